"""Loading weight files into models: whole models, or the backbone under a new head.

Keras 3 ``.weights.h5`` files store variables by layer *creation order*
(``layers/conv2d_3/vars/0``), not by layer name, so a file loads only into the
architecture that wrote it.  `load_backbone` therefore rebuilds the source
architecture with the file's own classifier width, loads the file there (Keras
checks every shape), and copies the weights layer by layer, by our stable
layer names, into the target model, leaving its head (``predictions``) alone.
"""

import os

import h5py
import numpy as np

__all__ = ["weight_file_classes", "load_backbone", "HEAD_LAYERS"]

HEAD_LAYERS = ("predictions",)


def _check_weight_file(path, argument="weights"):
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"{argument}={path!r}: expected a Keras weights file ending in .weights.h5.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{argument}={path!r}: no such file.")
    return path


def weight_file_classes(path):
    """The classifier width stored in a ``.weights.h5`` file of one of our models.

    Our models have exactly one Dense layer (the head), saved as ``layers/dense``.
    Returns None for a headless file (``include_top=False``).
    """
    path = _check_weight_file(path)
    try:
        with h5py.File(path, "r") as handle:
            layers = handle.get("layers")
            if layers is None:
                raise ValueError(f"{path}: not a Keras 3 .weights.h5 file (no 'layers' group).")
            dense = [name for name in layers if name == "dense" or name.startswith("dense_")]
            if not dense:
                return None
            if len(dense) > 1:
                raise ValueError(f"{path}: holds {len(dense)} Dense layers; expected one classifier head.")
            return int(layers[dense[0]]["vars"]["1"].shape[0])
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 weights file ({error}).") from None


def load_backbone(model, path, build_source, head_layers=HEAD_LAYERS):
    """Copy every layer's weights except the head from the file ``path`` into ``model``.

    Args:
        model: the target Keras model (any classifier width or input size).
        path: a ``.weights.h5`` written by a model of the same architecture.
        build_source: ``build_source(classes)`` returns an uncompiled model of
            the file's architecture with that classifier width.
        head_layers: layer names left untouched in ``model``.

    Returns:
        The names of the layers whose weights were copied.

    Raises:
        ValueError: the file is not of this architecture (Keras' message names
            the first mismatching layer), or a layer's shapes differ.
    """
    path = _check_weight_file(path)
    source = build_source(weight_file_classes(path))
    try:
        source.load_weights(path)
    except ValueError as error:
        raise ValueError(f"{path}: does not fit the {source.name} architecture: {error}") from None
    copied = []
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in model.layers:
        if layer.name in head_layers or not layer.weights:
            continue
        if layer.name not in source_layers:
            raise ValueError(f"{path}: has no layer {layer.name!r} for {model.name}.")
        values = source_layers[layer.name].get_weights()
        shapes = [np.shape(v) for v in values]
        expected = [tuple(w.shape) for w in layer.weights]
        if shapes != expected:
            raise ValueError(f"{path}: layer {layer.name!r} has shapes {shapes}, {model.name} expects {expected}.")
        layer.set_weights(values)
        copied.append(layer.name)
    return copied
