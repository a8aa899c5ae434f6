"""from_residual_adapters against a PyTorch ResNet-26 written from the reference code's description."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from keras_wrn.convert import from_residual_adapters  # noqa: E402


class Adapter1x1(nn.Module):
    """Series: x + conv1x1(BN(x)) as Sequential(BN, conv) under .conv; parallel: a strided 1x1 under .conv."""

    def __init__(self, planes, out_planes, stride, mode):
        super().__init__()
        self.mode = mode
        if mode == "series":
            self.conv = nn.Sequential(nn.BatchNorm2d(planes), nn.Conv2d(planes, planes, 1, bias=False))
        else:
            self.conv = nn.Conv2d(planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x):
        y = self.conv(x)
        return y + x if self.mode == "series" else y


class ConvTask(nn.Module):
    def __init__(self, inp, planes, stride, tasks, mode):
        super().__init__()
        self.mode = mode
        self.conv = nn.Conv2d(inp, planes, 3, stride=stride, padding=1, bias=False)
        if mode == "series":
            self.bns = nn.ModuleList([nn.Sequential(Adapter1x1(planes, planes, 1, mode), nn.BatchNorm2d(planes))
                                      for _ in range(tasks)])
        else:
            self.bns = nn.ModuleList([nn.BatchNorm2d(planes) for _ in range(tasks)])
        if mode == "parallel":
            self.parallel_conv = nn.ModuleList([Adapter1x1(inp, planes, stride, mode) for _ in range(tasks)])
        self.task = 0

    def forward(self, x):
        y = self.conv(x)
        if self.mode == "parallel":
            y = y + self.parallel_conv[self.task](x)
        return self.bns[self.task](y)


class Block(nn.Module):
    def __init__(self, inp, planes, stride, tasks, mode):
        super().__init__()
        self.conv1 = ConvTask(inp, planes, stride, tasks, mode)
        self.conv2 = nn.Sequential(nn.ReLU(), ConvTask(planes, planes, 1, tasks, mode))
        self.stride, self.extra = stride, planes - inp

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        shortcut = x
        if self.stride > 1 or self.extra:
            shortcut = nn.functional.avg_pool2d(x, self.stride) if self.stride > 1 else x
            shortcut = torch.cat([shortcut, shortcut.mul(0)[:, : self.extra]], 1)
        return torch.relu(y + shortcut)


class ResNet26(nn.Module):
    def __init__(self, classes, mode, factor=0.25):
        super().__init__()
        tasks = len(classes)
        stem, widths = int(32 * factor), [int(w * factor) for w in (64, 128, 256)]
        self.pre_layers_conv = ConvTask(3, stem, 1, tasks, mode)
        inp = stem
        for index, width in enumerate(widths, start=1):
            blocks = [Block(inp if b == 0 else width, width, 2 if b == 0 else 1, tasks, mode) for b in range(4)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            inp = width
        self.end_bns = nn.ModuleList([nn.Sequential(nn.BatchNorm2d(inp), nn.ReLU()) for _ in range(tasks)])
        self.linears = nn.ModuleList([nn.Linear(inp, c) for c in classes])

    def forward(self, x, task):
        for module in self.modules():
            if isinstance(module, ConvTask):
                module.task = task
        x = self.layer3(self.layer2(self.layer1(self.pre_layers_conv(x))))
        x = self.end_bns[task](x).mean(dim=(2, 3))
        return self.linears[task](x)


def randomised(model):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.dtype != torch.float32:
                continue
            if name.endswith("running_var") or (name.endswith("weight") and tensor.ndim == 1):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=generator))
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            else:
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * (2.0 / tensor[0].numel()) ** 0.5)
    return model.eval()


@pytest.mark.parametrize("mode", ["normal", "series", "parallel"])
def test_reference_logits_for_every_task(mode, tmp_path):
    reference = randomised(ResNet26([3, 5], mode))
    keys = set(reference.state_dict())
    assert "pre_layers_conv.conv.weight" in keys and "end_bns.0.0.weight" in keys and "linears.1.bias" in keys
    if mode == "series":
        assert "layer1.0.conv1.bns.0.0.conv.1.weight" in keys and "layer1.0.conv2.1.bns.1.1.running_var" in keys
    if mode == "parallel":
        assert "layer1.0.conv1.parallel_conv.0.conv.weight" in keys
    torch.save(reference.state_dict(), tmp_path / "ckpt.pth")
    network, found = from_residual_adapters(tmp_path / "ckpt.pth", domains=["cifar100", "svhn"], input_shape=(32, 32, 3))
    assert found == mode and network.domains == ["cifar100", "svhn"]
    x = np.random.default_rng(1).normal(size=(2, 32, 32, 3)).astype(np.float32)
    for task, domain in enumerate(network.domains):
        with torch.no_grad():
            expected = reference(torch.from_numpy(x.transpose(0, 3, 1, 2)), task).numpy()
        got = network[domain].predict(x, verbose=0)
        assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-4, (mode, domain)


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="match no known mode .*first keys: \\['conv0'"):
        from_residual_adapters({"conv0": torch.zeros(1), "fc.weight": torch.zeros(1)})
    state = randomised(ResNet26([3], "parallel")).state_dict()
    with pytest.raises(ValueError, match="2 names for the checkpoint's 1 tasks"):
        from_residual_adapters(state, domains=["a", "b"], input_shape=(32, 32, 3))
