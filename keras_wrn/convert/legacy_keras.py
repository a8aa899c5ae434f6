"""Keras 1 / Keras 2 HDF5 weight files of the seed repositories, Theano or TensorFlow backend.

Legacy files (``model.save_weights`` or ``model.save``) list their layers in
``layer_names`` and each layer's arrays in ``weight_names``.  Layer names carry
per-class counters in creation order (``convolution2d_7``, ``conv2d_7``,
``batchnormalization_3``, ``dense_1``), so sorting each kind by its counter
recovers the order in which the seed's code created them, which this module
maps onto keras_wrn's named layers.  Conversions applied:

- Keras 1 channels-first kernels ``(out, in, kh, kw)`` -> ``(kh, kw, in, out)``;
- Theano convolutions are true convolutions: kernels are flipped in both
  spatial axes (files record the backend from Keras 2 on; Keras 1 files need
  ``backend=``);
- BatchNorm epsilon: the seed's epsilon is folded into the moving variance
  (``var + eps_seed - 1e-5``), exact for keras_wrn's epsilon 1e-5; Keras 1's
  ``running_std`` holds the variance.

Seeds (where they deviate from the papers, and what is done):

``titu1994-wrn`` (titu1994/Wide-Residual-Networks, Keras 2 version)
    The paper's pre-activation WRN for ``k >= 2``: loads into
    `create_wide_residual_network` exactly when trained with Theano (stride-2
    "same" convolutions pad one pixel on each side, as Torch does).  Refused
    for TensorFlow-trained files (TF's "same" pads only bottom/right at stride
    2, a shifted sampling grid this package does not build) and for ``k = 1``
    (the seed adds a 1x1 projection where the paper has an identity).
``asmith26-wrn`` (asmith26/wide_resnets_keras, Keras 1, Theano, channels-first)
    The paper's blocks (BN epsilon 1e-3, folded), but its head pools 8x8 with
    stride 1 and "same" padding, flattens the whole 8x8 map and applies a
    bias-free dense layer: not the paper's global average pooling.  The
    backbone loads exactly (``include_top=False``); the head is refused.
``titu1994-ror`` (titu1994/Residual-of-Residual-Networks)
    Refused: it downsamples by max pooling between groups, its convolutions
    have biases and its shortcuts project un-activated inputs, so its weights
    compute a different network from the paper's RoR-3-WRN.
"""

import os
import re

import numpy as np

from keras_wrn.convert.pytorch_wrn import assign_checked
from keras_wrn.io import open_hdf5
from keras_wrn.models import create_wide_residual_network

__all__ = ["from_legacy_keras", "read_legacy_weights", "SEEDS"]

TARGET_EPSILON = 1e-5
SEEDS = ("titu1994-wrn", "asmith26-wrn", "titu1994-ror")
SEED_EPSILON = {"titu1994-wrn": 1e-5, "asmith26-wrn": 1e-3}
_KIND_PREFIXES = {"conv": ("convolution2d", "conv2d"), "bn": ("batchnormalization", "batch_normalization"),
                  "dense": ("dense",)}


def read_legacy_weights(path):
    """``(layers, attributes)``: layers as ``[(name, [arrays in weight order])]`` in file order.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: naming the file: empty, corrupt or truncated, not a Keras
            1/2 weights file, or listing a layer or weight it does not hold.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"source={path!r}: no such file.")
    with open_hdf5(path, "a Keras 1/2 weights file") as handle:
        root = handle["model_weights"] if isinstance(handle.get("model_weights"), h5py.Group) else handle
        if "layer_names" not in root.attrs:
            raise ValueError(f"{path}: not a Keras 1/2 weights file (no 'layer_names' attribute); "
                             "Keras 3 .weights.h5 files load with weights=PATH directly.")
        attributes = {key: _text(root.attrs[key]) for key in ("keras_version", "backend") if key in root.attrs}
        layers = []
        for name in _names(root.attrs["layer_names"], path, "layer_names"):
            group = root.get(name)
            if not isinstance(group, h5py.Group):
                raise ValueError(f"{path}: 'layer_names' lists {name!r}, which the file does not hold as a group.")
            arrays = []
            for weight in _names(group.attrs.get("weight_names", []), path, f"{name}'s weight_names"):
                if not isinstance(group.get(weight), h5py.Dataset):
                    raise ValueError(f"{path}: layer {name!r} lists weight {weight!r}, which the file does not hold.")
                arrays.append(np.asarray(group[weight][()]))
            layers.append((name, arrays))
    return layers, attributes


def _names(value, path, attribute):
    """The strings of the name-list attribute ``value`` (``layer_names``, ``weight_names``)."""
    names = _text(value)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise ValueError(f"{path}: the attribute {attribute} is {names!r}; expected a list of names.")
    return names


def _text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return [_text(v) for v in value.tolist()]
    return value


def _kind(name):
    base = re.sub(r"_\d+$", "", name)
    for kind, prefixes in _KIND_PREFIXES.items():
        if base in prefixes:
            return kind
    return None


def _by_kind(layers, path):
    """Weighted layers grouped by kind, each sorted by its creation counter."""
    kinds = {"conv": [], "bn": [], "dense": []}
    for position, (name, arrays) in enumerate(layers):
        if not arrays:
            continue
        kind = _kind(name)
        if kind is None:
            raise ValueError(f"{path}: layer {name!r} is of a kind no supported seed has.")
        match = re.search(r"_(\d+)$", name)
        kinds[kind].append((int(match.group(1)) if match else 0, position, name, arrays))
    return {kind: [(name, arrays) for _, _, name, arrays in sorted(items)] for kind, items in kinds.items()}


def _kernel(kernel, keras_version, backend):
    """A legacy 2D kernel as a channels-last cross-correlation kernel ``(kh, kw, in, out)``."""
    if kernel.ndim != 4:
        raise ValueError(f"a convolution kernel of shape {kernel.shape}; expected 4 dimensions.")
    if keras_version.startswith("1"):
        spatial = ((1, 1), (3, 3))
        first, last = tuple(kernel.shape[:2]), tuple(kernel.shape[2:])
        if last in spatial and first not in spatial:
            kernel = np.transpose(kernel, (2, 3, 1, 0))  # Keras 1 'th' layout (out, in, kh, kw)
        elif not (first in spatial and last not in spatial):
            raise ValueError(f"a Keras 1 kernel of shape {kernel.shape}: cannot tell the 'th' layout from 'tf'.")
    if backend == "theano":
        kernel = kernel[::-1, ::-1, :, :]  # Theano convolves; TensorFlow and Keras 3 correlate
    return np.ascontiguousarray(kernel)


def _seed_roles(seed, blocks_per_group, width):
    """Our layer names in the order the seed's code creates its convolutions and BatchNorms."""
    convs, bns = ["stem_conv"], []
    for group in (1, 2, 3):
        in_width = 16 if group == 1 else 16 * width * 2 ** (group - 2)
        out_width = 16 * width * 2 ** (group - 1)
        for block in range(1, blocks_per_group + 1):
            prefix = f"group{group}_block{block}"
            projection = block == 1 and (seed == "titu1994-wrn" or in_width != out_width)
            convs += [f"{prefix}_conv1", f"{prefix}_conv2"] + ([f"{prefix}_shortcut_conv"] if projection else [])
            bns += [f"{prefix}_bn1", f"{prefix}_bn2"]
    bns.append("final_bn")
    return convs, bns


def from_legacy_keras(source, seed, backend=None, depth=None, width=None, include_top=True, input_shape=(32, 32, 3)):
    """Load a seed repository's Keras 1/2 HDF5 weights into the matching keras_wrn model.

    Args:
        source: the ``.h5`` file.
        seed: ``"titu1994-wrn"``, ``"asmith26-wrn"`` or ``"titu1994-ror"`` (see the module doc).
        backend: ``"theano"`` or ``"tensorflow"``; required when the file does
            not record it (Keras 1), checked against the file otherwise.
        depth, width: checked against what the file's shapes imply (inferred if None).
        include_top: False loads only the backbone (the only choice for asmith26-wrn).

    Returns:
        A `create_wide_residual_network` model (softmax outputs, as the seeds').
    """
    path = os.fspath(source)
    if seed not in SEEDS:
        raise ValueError(f"seed={seed!r} is not allowed; expected one of {list(SEEDS)}.")
    if seed == "titu1994-ror":
        raise ValueError(
            f"{path}: titu1994-ror weights are refused: that seed downsamples with max pooling between groups, "
            "gives its convolutions biases and projects un-activated inputs in its shortcuts, so its weights "
            "compute a different network from the paper's RoR-3-WRN built here; no exact conversion exists."
        )
    layers, attributes = read_legacy_weights(path)
    keras_version = str(attributes.get("keras_version", "1"))
    recorded = attributes.get("backend")
    if backend is None and recorded is None:
        raise ValueError(f"{path}: the file does not record its backend (a Keras 1 file); pass backend='theano' "
                         "or backend='tensorflow' (the seeds' released files were trained with Theano).")
    if backend is not None and recorded is not None and backend != recorded:
        raise ValueError(f"{path}: backend={backend!r} contradicts the file, written with {recorded!r}.")
    backend = backend or recorded
    if backend not in ("theano", "tensorflow"):
        raise ValueError(f"backend={backend!r} is not allowed; expected 'theano' or 'tensorflow'.")

    kinds = _by_kind(layers, path)
    if not kinds["conv"]:
        raise ValueError(f"{path}: holds no convolution weights; not a {seed} WRN file.")
    try:
        convs = [(name, _kernel(arrays[0], keras_version, backend), arrays[1:]) for name, arrays in kinds["conv"]]
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    if any(bias for _, _, bias in convs):
        raise ValueError(f"{path}: convolutions with biases; neither WRN seed has them (is it {seed}?).")
    stem = convs[0][1]
    first = convs[1][1] if len(convs) > 1 else None
    if stem.shape[:3] != (3, 3, 3) or stem.shape[3] != 16 or first is None:
        raise ValueError(f"{path}: the first convolution has kernel {stem.shape}; a {seed} stem is 3x3, 3 -> 16.")
    inferred_width = first.shape[3] // 16
    blocks = None
    for n in range(1, 200):
        expected_convs, _ = _seed_roles(seed, n, inferred_width)
        if len(expected_convs) == len(convs):
            blocks = n
            break
    if blocks is None:
        raise ValueError(f"{path}: {len(convs)} convolutions fit no {seed} WRN-d-k.")
    inferred_depth = 6 * blocks + 4
    for argument, given, found in (("depth", depth, inferred_depth), ("width", width, inferred_width)):
        if given is not None and given != found:
            raise ValueError(f"{path}: {argument}={given!r}, but the file holds a WRN-{inferred_depth}-{inferred_width}.")
    if seed == "titu1994-wrn" and inferred_width == 1:
        raise ValueError(f"{path}: a titu1994 WRN-{inferred_depth}-1 has a 1x1 projection in group 1 where the "
                         "paper (and this package) has an identity; refused.")
    if seed == "titu1994-wrn" and backend == "tensorflow":
        raise ValueError(
            f"{path}: trained with TensorFlow, whose 'same' padding at stride 2 pads only the bottom and right; "
            "keras_wrn pads one pixel on each side as the authors' Torch code (and Theano) did, so the converted "
            "network would sample other pixels. Refused rather than loaded approximately."
        )
    if seed == "asmith26-wrn" and include_top:
        raise ValueError(
            f"{path}: asmith26's head (8x8 average pooling with stride 1 and 'same' padding, the whole 8x8 map "
            "flattened into a bias-free dense layer) is not the paper's global average pooling and has no "
            "counterpart here; pass include_top=False to load its backbone exactly and train a new head."
        )

    conv_roles, bn_roles = _seed_roles(seed, blocks, inferred_width)
    if len(kinds["bn"]) != len(bn_roles):
        raise ValueError(f"{path}: {len(kinds['bn'])} BatchNorm layers, a {seed} WRN-{inferred_depth}-"
                         f"{inferred_width} has {len(bn_roles)}.")
    dense = kinds["dense"]
    classes = None
    if include_top:
        if len(dense) != 1:
            raise ValueError(f"{path}: {len(dense)} dense layers; expected one classifier.")
        if dense[0][1][0].ndim != 2:
            raise ValueError(f"{path}: the dense kernel has shape {dense[0][1][0].shape}; expected 2 dimensions.")
        classes = dense[0][1][0].shape[1]
    model = create_wide_residual_network(input_shape, classes or 10, depth=inferred_depth, width=inferred_width,
                                         include_top=include_top, compile=False)

    def assign(layer_name, values, origin):
        assign_checked(model.get_layer(layer_name), values, path, origin)

    for role, (name, kernel, _) in zip(conv_roles, convs):
        assign(role, [kernel], name)
    epsilon = SEED_EPSILON[seed]
    for role, (name, arrays) in zip(bn_roles, kinds["bn"]):
        gamma, beta, mean, variance = arrays
        assign(role, [gamma, beta, mean, variance + (epsilon - TARGET_EPSILON)], name)
    if include_top:
        kernel, *bias = dense[0][1]
        assign("predictions", [kernel, bias[0] if bias else np.zeros(kernel.shape[1], kernel.dtype)], dense[0][0])
    return model
