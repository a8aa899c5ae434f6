"""The residual-adapter reference code's ResNet-26 parameters (seed 001, PyTorch) -> `(MultiDomainNetwork, mode)`.

Keys of its ``state_dict`` (task index ``t``; ``U`` a conv unit: ``pre_layers_conv``,
``layer{s}.{b}.conv1`` or ``layer{s}.{b}.conv2.1``)::

    U.conv.weight                       shared 3x3 conv (out, in, 3, 3)
    U.bns.{t}.{weight,bias,running_*}   normal and parallel modes: the domain BN
    U.parallel_conv.{t}.conv.weight     parallel: the 1x1 adapter (out, in, 1, 1)
    U.bns.{t}.0.conv.0.*                series: the adapter's BN
    U.bns.{t}.0.conv.1.weight           series: the adapter's 1x1 conv
    U.bns.{t}.1.*                       series: the domain BN
    end_bns.{t}.0.*                     final BN (then ReLU)
    linears.{t}.{weight,bias}           heads

``layer{s}.{b}`` maps to ``stage{s}_block{b+1}``; ``pre_layers_conv`` to ``stem_conv``.
"""

import re

import numpy as np

from keras_wrn.adapters import MultiDomainNetwork
from keras_wrn.convert.pytorch_wrn import assign_checked, read_torch_tensors

__all__ = ["from_residual_adapters", "MODES"]

MODES = ("normal", "series", "parallel")
_BN = ("weight", "bias", "running_mean", "running_var")


def _mode(tensors, where):
    if any(".parallel_conv." in key for key in tensors):
        return "parallel"
    if any(re.search(r"\.bns\.\d+\.0\.conv\.1\.weight$", key) for key in tensors):
        return "series"
    if any(re.search(r"\.bns\.\d+\.weight$", key) for key in tensors) and "pre_layers_conv.conv.weight" in tensors:
        return "normal"
    sample = sorted(tensors)[:4]
    raise ValueError(f"{where}: its keys match no known mode of the residual-adapter ResNet-26 (normal, series, "
                     f"parallel); first keys: {sample}.")


def _unit_key(layer_name):
    if layer_name == "stem_conv":
        return "pre_layers_conv"
    stage, block, conv = re.fullmatch(r"stage(\d)_block(\d+)_(conv[12])", layer_name).groups()
    return f"layer{stage}.{int(block) - 1}." + ("conv1" if conv == "conv1" else "conv2.1")


def from_residual_adapters(source, domains=None, input_shape=(64, 64, 3)):
    """Build a `MultiDomainNetwork` holding the reference checkpoint's tasks.

    Args:
        source: a path (``torch.load(weights_only=True)``) or a state dict.
        domains: names for the tasks in index order (default ``task0``, ``task1``, ...).

    Returns:
        ``(network, mode)``: the network (adapter None / "series" / "parallel"),
        outputs logits as the reference's ``linears`` do.
    """

    tensors, where = read_torch_tensors(source)
    mode = _mode(tensors, where)
    tasks = sorted({int(m.group(1)) for key in tensors for m in [re.fullmatch(r"linears\.(\d+)\.weight", key)] if m})
    if not tasks or tasks != list(range(len(tasks))):
        raise ValueError(f"{where}: expected heads linears.0 .. linears.N-1, found tasks {tasks}.")
    names = list(domains) if domains is not None else [f"task{t}" for t in tasks]
    if len(names) != len(tasks):
        raise ValueError(f"domains: {len(names)} names for the checkpoint's {len(tasks)} tasks.")
    stem = tensors.get("pre_layers_conv.conv.weight")
    if stem is None or np.ndim(stem) != 4:
        raise ValueError(f"{where}: has no 4-D 'pre_layers_conv.conv.weight' (the stem), which a {mode}-mode "
                         f"ResNet-26 needs; found {None if stem is None else np.shape(stem)}.")
    network = MultiDomainNetwork(adapter=None if mode == "normal" else mode, input_shape=input_shape,
                                 width_factor=stem.shape[0] / 32)
    used = set()

    def take(key):
        if key not in tensors:
            raise ValueError(f"{where}: has no {key!r}, which a {mode}-mode ResNet-26 needs.")
        used.add(key)
        return tensors[key]

    def assign(layer, values, key):
        assign_checked(layer, values, where, key)

    def kernel(key):
        return np.transpose(take(key), (2, 3, 1, 0))

    for task, domain in zip(tasks, names):
        network.add_domain(domain, int(tensors[f"linears.{task}.weight"].shape[0]))
        store = network.domain_bank(domain).layers
        for name in network.shared.layers:
            unit = _unit_key(name)
            if task == tasks[0]:
                assign(network.shared.layers[name], [kernel(f"{unit}.conv.weight")], f"{unit}.conv.weight")
            bn = f"{unit}.bns.{task}.1" if mode == "series" else f"{unit}.bns.{task}"
            assign(store[f"{name}_bn"], [take(f"{bn}.{field}") for field in _BN], bn)
            if mode == "parallel" and f"{name}_adapter" in store:
                key = f"{unit}.parallel_conv.{task}.conv.weight"
                assign(store[f"{name}_adapter"], [kernel(key)], key)
            if mode == "series" and f"{name}_adapter" in store:
                side = f"{unit}.bns.{task}.0.conv"
                assign(store[f"{name}_adapter_bn"], [take(f"{side}.0.{field}") for field in _BN], f"{side}.0")
                assign(store[f"{name}_adapter"], [kernel(f"{side}.1.weight")], f"{side}.1.weight")
        assign(store["final_bn"], [take(f"end_bns.{task}.0.{field}") for field in _BN], f"end_bns.{task}.0")
        assign(store["predictions"], [take(f"linears.{task}.weight").T, take(f"linears.{task}.bias")],
               f"linears.{task}")
    left = sorted(k for k in set(tensors) - used if not k.endswith("num_batches_tracked"))
    if left:
        raise ValueError(f"{where}: tensors {left[:5]} have no place in the {mode}-mode ResNet-26.")
    return network, mode
