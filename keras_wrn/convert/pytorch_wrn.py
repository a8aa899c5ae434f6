"""The authors' PyTorch WRN checkpoints (szagoruyko/wide-residual-networks, ``pytorch/resnet.py``).

That code keeps the network as a flat dict of tensors (no ``nn.Module``)::

    conv0                                   (16, 3, 3, 3)       stem
    group{g}.block{b}.bn0.{weight,bias,running_mean,running_var}   BN-ReLU before conv0
    group{g}.block{b}.conv0                 (w, w_in, 3, 3)     stride 2 in block0 of groups 1, 2
    group{g}.block{b}.bn1.*                 BN-ReLU before conv1
    group{g}.block{b}.conv1                 (w, w, 3, 3)
    group{g}.block{b}.convdim               (w, w_in, 1, 1)     only where widths differ
    bn.*                                    final BN-ReLU
    fc.weight (classes, 64k), fc.bias

and its ``main.py`` saves ``{"params": {...}, "epoch": ..., "optimizer": ...}``.
Blocks are pre-activation; ``convdim`` reads the pre-activated input; the
stride-2 convolutions pad one pixel on each side; BN uses eps 1e-5 -- the
conventions of `keras_wrn.blocks`, so the mapping is one to one:
``group{g}.block{b}.{bn0,conv0,bn1,conv1,convdim}`` ->
``group{g+1}_block{b+1}_{bn1,conv1,bn2,conv2,shortcut_conv}``.
"""

import os
import re

import numpy as np

from keras_wrn.models import create_wide_residual_network

__all__ = ["from_wide_resnet_pytorch", "wide_resnet_pytorch_arguments", "read_torch_tensors", "assign_checked"]


def assign_checked(layer, values, where, origin):
    """``layer.set_weights(values)`` after checking every shape; errors name the file and the source."""
    expected = [tuple(w.shape) for w in layer.weights]
    if [tuple(np.shape(v)) for v in values] != expected:
        raise ValueError(f"{where}: {origin} has shapes {[np.shape(v) for v in values]}, {layer.name} expects "
                         f"{expected}.")
    layer.set_weights(values)

_BN = ("weight", "bias", "running_mean", "running_var")  # -> gamma, beta, moving_mean, moving_variance
_PARTS = {"bn0": "bn1", "conv0": "conv1", "bn1": "bn2", "conv1": "conv2", "convdim": "shortcut_conv"}


_RESAVE = "expected a file written by torch.save(model.state_dict(), path) (or {'params': {...}})"


def _torch_load(path):
    """``torch.load(path, weights_only=True)``; ValueError naming the file for anything it cannot read.

    An empty, truncated or random file makes ``torch.load`` fail with almost
    any exception type (IndexError, EOFError, KeyError, struct.error,
    AssertionError, RuntimeError, ...), so every ``Exception`` is reported as
    a file that is not a checkpoint; the unpickler never runs code.
    """
    import torch

    if os.path.getsize(path) == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a PyTorch checkpoint; it was cut off while being "
                         f"written or copied; {_RESAVE}.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in lines if "WeightsUnpickler error" in line), lines[0] if lines else "")
        raise ValueError(f"{path}: not a PyTorch checkpoint of tensors (loaded with weights_only=True; corrupt, "
                         f"truncated or holding other objects: {type(error).__name__}: {reason[:300]}); "
                         f"{_RESAVE}.") from None


def _as_array(value, name, where):
    """A tensor or array ``value`` as an ndarray (floats as float32); None for anything else (counters)."""
    if hasattr(value, "detach"):
        try:
            value = value.detach().cpu()
            value = (value.float() if value.is_floating_point() else value).numpy()
        except (RuntimeError, TypeError) as error:
            raise ValueError(f"{where}: tensor {name!r} cannot be read as an array ({error}).") from None
    if not isinstance(value, np.ndarray):
        return None
    return value.astype(np.float32) if value.dtype.kind == "f" else value


def read_torch_tensors(source, argument="source"):
    """``{name: float32 ndarray}`` from a path (``torch.load(weights_only=True)``) or a dict.

    A dict holding the tensors under ``"params"`` or ``"state_dict"`` is unwrapped.

    Raises:
        FileNotFoundError: no file at the path.
        ValueError: naming the file: empty, truncated or corrupt, not loadable
            with ``weights_only=True``, or not a dict of tensors.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{argument}={path!r}: no such file.")
        source, where = _torch_load(path), path
    else:
        where = argument
    if isinstance(source, dict):
        for key in ("params", "state_dict"):
            if isinstance(source.get(key), dict):
                source = source[key]
                break
    if not isinstance(source, dict) or not source:
        content = "an empty dict" if isinstance(source, dict) else f"an object of type {type(source).__name__}"
        raise ValueError(f"{where}: holds {content}, not a dict of tensors (optionally under 'params'); {_RESAVE}.")
    tensors = {}
    for name, value in source.items():
        array = _as_array(value, name, where)
        if array is not None:  # counters such as num_batches_tracked are not weights
            tensors[str(name)] = array
    if not tensors:
        raise ValueError(f"{where}: holds no tensors (keys {sorted(map(str, source))[:5]}); {_RESAVE}.")
    return tensors, where


def wide_resnet_pytorch_arguments(tensors, where="source"):
    """``dict(depth, width, classes)`` inferred from the tensors' names and shapes."""
    blocks = {}
    for name in tensors:
        match = re.fullmatch(r"group(\d+)\.block(\d+)\.conv0", name)
        if match:
            blocks.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    required = ["conv0", "fc.weight", "fc.bias"] + [f"bn.{field}" for field in _BN]
    missing = [name for name in required if name not in tensors]
    if missing or sorted(blocks) != [0, 1, 2]:
        raise ValueError(f"{where}: not a WRN checkpoint of szagoruyko/wide-residual-networks' pytorch/resnet.py: "
                         f"missing {missing or 'group0..group2 blocks'}.")
    counts = {len(numbers) for numbers in blocks.values()}
    if len(counts) != 1:
        raise ValueError(f"{where}: groups have different block counts {sorted(counts)}; expected 6n + 4 layers.")
    per_group = counts.pop()
    if any(numbers != set(range(per_group)) for numbers in blocks.values()):
        raise ValueError(f"{where}: blocks are not numbered block0..block{per_group - 1} in every group.")
    for name, ndim in (("conv0", 4), ("group2.block0.conv0", 4), ("fc.weight", 2)):
        if np.ndim(tensors[name]) != ndim:
            raise ValueError(f"{where}: {name} has shape {np.shape(tensors[name])}; expected {ndim} dimensions.")
    widest = tensors["group2.block0.conv0"].shape[0]
    if widest == 0 or widest % 64:
        raise ValueError(f"{where}: group2 has {widest} channels; expected 64 x width.")
    return dict(depth=6 * per_group + 4, width=widest // 64, classes=int(tensors["fc.weight"].shape[0]))


def _conv_kernel(tensor):
    return np.transpose(tensor, (2, 3, 1, 0))  # (out, in, kh, kw) -> (kh, kw, in, out)


def from_wide_resnet_pytorch(source, input_shape=(32, 32, 3), classifier_activation=None, compile=False):
    """Build the WRN-d-k of a checkpoint of the authors' PyTorch code and load its tensors.

    Args:
        source: a ``.pt``/``.pth`` path (read with ``torch.load(weights_only=True)``)
            or a dict of tensors / arrays, flat or under ``"params"``.
        input_shape: channels-last input; the original's input, transposed.
        classifier_activation: None (default) returns logits, as the original's
            ``f`` does; ``"softmax"`` for probabilities.

    Returns:
        A `keras.Model` from `create_wide_residual_network`; every tensor of the
        checkpoint is used exactly once (anything left over is an error).
    """

    tensors, where = read_torch_tensors(source)
    arguments = wide_resnet_pytorch_arguments(tensors, where)
    model = create_wide_residual_network(input_shape, arguments["classes"], depth=arguments["depth"],
                                         width=arguments["width"], classifier_activation=classifier_activation,
                                         compile=compile)
    used = set()

    def take(name):
        if name not in tensors:
            raise ValueError(f"{where}: has no tensor {name!r}, which WRN-{arguments['depth']}-{arguments['width']} needs.")
        used.add(name)
        return tensors[name]

    def assign(layer_name, values):
        assign_checked(model.get_layer(layer_name), values, where, "the checkpoint")

    assign("stem_conv", [_conv_kernel(take("conv0"))])
    for layer in model.layers:
        match = re.fullmatch(r"group(\d+)_block(\d+)_(bn1|conv1|bn2|conv2|shortcut_conv)", layer.name)
        if not match:
            continue
        part = next(key for key, value in _PARTS.items() if value == match.group(3))
        base = f"group{int(match.group(1)) - 1}.block{int(match.group(2)) - 1}.{part}"
        if part.startswith("bn"):
            assign(layer.name, [take(f"{base}.{field}") for field in _BN])
        else:
            assign(layer.name, [_conv_kernel(take(base))])
    assign("final_bn", [take(f"bn.{field}") for field in _BN])
    assign("predictions", [take("fc.weight").T, take("fc.bias")])
    left = sorted(set(name for name in tensors if not name.endswith("num_batches_tracked")) - used)
    if left:
        raise ValueError(f"{where}: tensors {left[:5]} have no place in WRN-{arguments['depth']}-{arguments['width']}.")
    return model
