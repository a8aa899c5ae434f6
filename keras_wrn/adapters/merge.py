"""Folding a domain's adapters into the shared convolutions: one plain network per domain.

Parallel: the 1x1 adapter kernel is added to the 3x3 kernel's centre tap (same
stride, and the centre tap samples the pixel the 1x1 conv reads).  Series:
``z + W(a*z + b)`` with the adapter BN's inference affine ``a, b`` equals
``z (I + diag(a) W) + b W``: the matrix folds into the kernel's output
channels, the constant into the domain BN's moving mean (ResNet-26 only: the
pre-activation WRN's convolutions are not followed by a BN that could hold it).
Computed in float64.
"""

import numpy as np

from keras_wrn.models import create_wide_residual_network, resnet26

__all__ = ["merge_domain"]


def _as64(values):
    return [np.asarray(value, np.float64) for value in values]


def merge_domain(network, domain):
    """A plain network computing ``network[domain]`` at inference, adapters folded in.

    ResNet-26 (series or parallel adapters) gives a plain `resnet26`; WRN-RAM
    with parallel adapters a plain `create_wide_residual_network` (logit head).
    Compiled when the network compiles its domain models.

    Raises:
        ValueError: WRN-RAM with series adapters (see the module doc).
    """
    if network.spec["architecture"] == "wrn":
        return _merge_wrn(network, domain)
    model, bank = network[domain], network.domain_bank(domain).layers
    plain = resnet26(network.classes[domain], network.input_shape, adapter=None, width_factor=network.width_factor,
                     compile=network.compile, precision=network.precision, name=f"resnet26_{domain}_merged")
    for name, conv in network.shared.layers.items():
        kernel = np.asarray(conv.kernel.numpy(), np.float64)
        gamma, beta, mean, variance = _as64(bank[f"{name}_bn"].get_weights())
        adapter = bank.get(f"{name}_adapter")
        if adapter is not None and network.adapter == "parallel":
            kernel[1, 1] += np.asarray(adapter.kernel.numpy(), np.float64)[0, 0]
        elif adapter is not None and network.adapter == "series":
            side = bank[f"{name}_adapter_bn"]
            g, b, m, v = _as64(side.get_weights())
            scale = g / np.sqrt(v + side.epsilon)
            shift = b - m * scale
            matrix = np.asarray(adapter.kernel.numpy(), np.float64)[0, 0]  # (C, C): in -> out
            kernel = kernel @ (np.eye(len(scale)) + scale[:, None] * matrix)
            mean = mean - shift @ matrix
        plain.get_layer(name).set_weights([kernel.astype(conv.kernel.dtype)])
        plain.get_layer(f"{name}_bn").set_weights([gamma, beta, mean, variance])
    for name in ("final_bn", "predictions"):
        plain.get_layer(name).set_weights(model.get_layer(name).get_weights())
    return plain


def _merge_wrn(network, domain):
    """WRN-RAM, parallel adapters: the 1x1 adapter adds to the 3x3 kernel's centre tap (to a 1x1 projection itself)."""
    if network.adapter == "series":
        raise ValueError("merge: a WRN-RAM with series adapters cannot be merged: the adapter BN's shift "
                         "through the 1x1 conv is a constant per channel, and the pre-activation WRN's "
                         "convolutions have no bias to hold it; use adapter='parallel' (or the ResNet-26).")
    bank = network.domain_bank(domain).layers
    plain = create_wide_residual_network(depth=network.spec["depth"], width=network.spec["width"],
                                         classes=network.classes[domain], input_shape=network.input_shape,
                                         classifier_activation=None, compile=network.compile,
                                         precision=network.precision)
    for name, conv in network.shared.layers.items():
        kernel = np.asarray(conv.kernel.numpy(), np.float64)
        adapter = bank.get(f"{name}_adapter")
        if adapter is not None:
            centre = kernel.shape[0] // 2
            kernel[centre, centre] += np.asarray(adapter.kernel.numpy(), np.float64)[0, 0]
        plain.get_layer(name).set_weights([kernel.astype(conv.kernel.dtype)])
    for name, layer in bank.items():
        if "adapter" not in name:
            plain.get_layer(name).set_weights(layer.get_weights())
    return plain
