"""Model statistics: parameters, multiply-accumulates and activation memory per image.

`model_stats` visits each layer of a Functional model once, with the shapes of
its first call, and counts

- multiply-accumulates (MACs) of convolutions and dense layers for one image:
  ``H_out * W_out * C_out * K_h * K_w * C_in / groups`` and ``in * out``;
  BN, ReLU, additions and pooling are not counted (the usual convention of
  the papers' "FLOPs" tables, which are 2 x MACs);
- activation memory: the bytes of every layer output for one image, i.e. what
  a training step must keep for the backward pass (inputs excluded).
"""

import math

import keras
import numpy as np

__all__ = ["count_parameters", "model_stats", "summary", "format_stats"]


def count_parameters(variables):
    """The number of scalars in ``variables`` (Keras variables or anything with a ``shape``)."""
    return int(sum(math.prod(int(dim) for dim in v.shape) for v in variables))


def _per_image_size(tensor):
    dims = tensor.shape[1:]
    if any(d is None for d in dims):
        raise ValueError(
            f"model_stats: the output {tensor.name!r} has an unknown dimension {tuple(tensor.shape)}; "
            "build the model with a fixed input_shape to count MACs and activation memory."
        )
    return math.prod(dims)


def _layer_macs(layer, output):
    if isinstance(layer, keras.layers.Conv2D):  # DepthwiseConv2D is not a Conv2D subclass
        kernel_h, kernel_w, in_per_group, _ = layer.kernel.shape
        return _per_image_size(output) * kernel_h * kernel_w * in_per_group
    if isinstance(layer, keras.layers.Dense):
        return _per_image_size(output) * layer.kernel.shape[0]
    return 0


def model_stats(model):
    """Counts for one image through ``model``.

    Returns:
        dict with ``total_params``, ``trainable_params``, ``non_trainable_params``,
        ``weight_params`` (conv kernels and dense weights/biases only: what He et
        al. count in their parameter figures), ``macs`` and ``activation_bytes``.
    """
    macs = 0
    activation_bytes = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        # `layer.output` is the output of the layer's first call.  Every layer of these
        # networks is called once per model; a layer shared by several domain models
        # (`keras_wrn.adapters`) has the same shapes in each.
        for tensor in keras.tree.flatten(layer.output):
            itemsize = np.dtype(keras.backend.standardize_dtype(tensor.dtype)).itemsize
            activation_bytes += _per_image_size(tensor) * itemsize
        macs += _layer_macs(layer, keras.tree.flatten(layer.output)[0])
    weight_params = 0
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            weight_params += count_parameters(layer.weights)
    trainable = count_parameters(model.trainable_weights)
    total = count_parameters(model.weights)
    return {
        "total_params": total,
        "trainable_params": trainable,
        "non_trainable_params": total - trainable,
        "weight_params": weight_params,
        "macs": int(macs),
        "activation_bytes": int(activation_bytes),
    }


def format_stats(name, stats):
    """A short human-readable table of `model_stats` output."""
    rows = [
        ("Total parameters", f"{stats['total_params']:,}"),
        ("Trainable parameters", f"{stats['trainable_params']:,}"),
        ("Non-trainable parameters", f"{stats['non_trainable_params']:,}"),
        ("Conv + dense weights", f"{stats['weight_params']:,}"),
        ("Multiply-accumulates / image", f"{stats['macs']:,} ({stats['macs'] / 1e9:.3f} GMACs)"),
        (
            "Activation memory / image",
            f"{stats['activation_bytes']:,} bytes ({stats['activation_bytes'] / 2**20:.2f} MiB)",
        ),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [name] + [f"  {label:<{width}}  {value}" for label, value in rows]
    return "\n".join(lines)


def summary(model, print_fn=print):
    """Print `format_stats` for ``model`` and return the `model_stats` dict."""
    stats = model_stats(model)
    print_fn(format_stats(model.name, stats))
    return stats
