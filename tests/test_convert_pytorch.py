"""from_wide_resnet_pytorch against a PyTorch reference of the authors' functional WRN, in eval mode."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from helpers import reference_forward, reference_params  # noqa: E402
from keras_wrn.convert import from_wide_resnet_pytorch, wide_resnet_pytorch_arguments  # noqa: E402


@pytest.mark.parametrize("depth, width, classes, wrapped", [(10, 1, 10, False), (16, 2, 100, True), (22, 1, 7, False)])
def test_logits_match_the_pytorch_reference(tmp_path, depth, width, classes, wrapped):
    params = reference_params(depth, width, classes)
    path = tmp_path / "model.pt"
    torch.save({"params": params, "epoch": 200, "optimizer": {"lr": 0.0008}} if wrapped else params, path)
    model = from_wide_resnet_pytorch(path)
    assert wide_resnet_pytorch_arguments({k: v.numpy() for k, v in params.items()}) == dict(
        depth=depth, width=width, classes=classes)
    x = np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference_forward(torch.from_numpy(x.transpose(0, 3, 1, 2)), params, depth).numpy()
    got = model.predict(x, verbose=0)
    assert got.shape == (4, classes)
    relative = np.abs(got - expected).max() / np.abs(expected).max()
    assert relative < 1e-4, relative


def test_unpickling_code_is_refused(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned > " + str(tmp_path / "owned"),))

    path = tmp_path / "evil.pt"
    torch.save({"conv0": Evil()}, path)
    with pytest.raises(ValueError, match="evil.pt: not a PyTorch checkpoint of tensors .*weights_only=True"):
        from_wide_resnet_pytorch(path)
    assert not (tmp_path / "owned").exists()


def test_incomplete_or_foreign_checkpoints(tmp_path):
    params = reference_params(10, 1, 10)
    with pytest.raises(ValueError, match="not a WRN checkpoint .*missing \\['fc.weight'\\]"):
        from_wide_resnet_pytorch({k: v for k, v in params.items() if k != "fc.weight"})
    extra = dict(params, **{"group0.block0.extra": torch.zeros(3)})
    with pytest.raises(ValueError, match="tensors \\['group0.block0.extra'\\] have no place in WRN-10-1"):
        from_wide_resnet_pytorch(extra)
    broken = dict(params, **{"group1.block0.conv1": torch.zeros(32, 32, 1, 1)})
    with pytest.raises(ValueError, match="the checkpoint has shapes .*group2_block1_conv2 expects \\[\\(3, 3, 32, 32\\)\\]"):
        from_wide_resnet_pytorch(broken)
    with pytest.raises(FileNotFoundError, match="no such file"):
        from_wide_resnet_pytorch(tmp_path / "missing.pt")


@pytest.mark.slow
def test_convert_command_writes_weights_that_builders_load(tmp_path):
    import json
    import os
    import subprocess
    import sys

    import keras_wrn

    params = reference_params(16, 2, 10)
    torch.save({"params": params}, tmp_path / "wrn.pt")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    command = [sys.executable, "-m", "keras_wrn", "convert", str(tmp_path / "wrn.pt"), str(tmp_path / "wrn.weights.h5")]
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    description = json.loads((tmp_path / "wrn.json").read_text())
    assert description["model"] == "wrn_16_2" and description["classes"] == 10
    model = keras_wrn.create_wide_residual_network(depth=16, width=2, classifier_activation=None,
                                                   weights=tmp_path / "wrn.weights.h5")
    x = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
    with torch.no_grad():
        expected = reference_forward(torch.from_numpy(x.transpose(0, 3, 1, 2)), params, 16).numpy()
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 2 and "exists; choose another path" in again.stderr
