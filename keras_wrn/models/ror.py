"""Residual Networks of Residual Networks, RoR-3 (Zhang et al., arXiv 1608.02908) -- seed 002.

RoR-3 adds two shortcut levels above the block shortcuts:

- level 1 (root): a 1x1 conv, stride 4, from the stem output to the final
  width (64k), added after the last group (``root_shortcut_conv``);
- level 2: per group, a 1x1 conv from the group input to the group width
  (16k, 32k, 64k), stride 1/2/2, added at the group output
  (``group{g}_shortcut_conv``).

Two builders:

- `create_residual_of_residual`: RoR-3 on the original conv-BN-ReLU ResNets
  (RoR-3-56/110/164), depth = 6n + 8 (the paper counts the stem, 6n block
  convs, the classifier, the two strided projections and the four RoR
  shortcut convs).  Shortcut convs are followed by BN (ResNet option B), and
  the level shortcuts are added before the ReLU that ends the group.
- `create_pre_residual_of_residual`: Pre-RoR-3 (k = 1) and RoR-3-WRN-d-k on
  pre-activation blocks, depth = 6n + 4 counted as for a WRN (the RoR
  shortcut convs are not counted), then the final BN-ReLU.

Deviation of the seed Keras code, not reproduced: it downsampled with max
pooling between groups; here, as in the paper, the first block of groups 2
and 3 has a strided convolution.
"""

from keras import layers

from keras_wrn.blocks import PLAIN, bn_relu, residual_group
from keras_wrn.models.base import (
    GROUP_STRIDES,
    Family,
    build_model,
    cifar_configure,
    depth_error,
    stem_conv,
    wide_group_filters,
)


def ror_blocks_per_group(depth, options=None):
    """n = (depth - 8) / 6 basic blocks per group (RoR-3-110: n = 17)."""
    if depth < 14 or (depth - 8) % 6:
        raise depth_error("create_residual_of_residual", depth, "6n + 8", "56, 110, 164")
    return (depth - 8) // 6


def pre_ror_blocks_per_group(depth, options=None):
    """n = (depth - 4) / 6 blocks per group (RoR-3-WRN-40-2: n = 6)."""
    if depth < 10 or (depth - 4) % 6:
        raise depth_error(
            "create_pre_residual_of_residual", depth, "6n + 4", "16, 28, 40, 58 (counted as for a WRN)"
        )
    return (depth - 4) // 6


def _projection(x, filters, strides, name, with_bn, units):
    y = units.conv(x, filters, 1, strides, f"{name}_conv")
    return units.bn(y, f"{name}_bn", fold_into_conv="always") if with_bn else y  # a residual Add follows


def ror3_backbone(x, config, units=PLAIN, preact=False):
    """RoR-3 trunk: ``(B, H, W, C) -> (B, H/4, W/4, 64k)``, after the final activation."""
    filters_per_group = wide_group_filters(config["width"])
    x = stem_conv(x, units=units)
    if not preact:
        x = bn_relu(x, "stem", units=units)
    root = _projection(x, filters_per_group[-1], 4, "root_shortcut", not preact, units)
    block = "preact_basic" if preact else "postact_basic"
    for index, (filters, strides) in enumerate(zip(filters_per_group, GROUP_STRIDES)):
        name = f"group{index + 1}"
        level2 = _projection(x, filters, strides, f"{name}_shortcut", not preact, units)
        x = residual_group(x, block, filters, config["blocks_per_group"], strides, config["dropout"], name,
                           activate_last=preact, units=units)
        x = layers.Add(name=f"{name}_shortcut_add")([x, level2])
        if index == len(filters_per_group) - 1:
            x = layers.Add(name="root_shortcut_add")([x, root])
        if not preact:
            x = layers.ReLU(name=f"{name}_out")(x)
    return bn_relu(x, "final", units=units) if preact else x


def _ror_naming(config):
    suffix = f"-w{config['width']}" if config["width"] > 1 else ""
    return f"RoR-3-{config['depth']}{suffix}", f"ror3_{config['depth']}" + suffix.replace("-", "_")


def _pre_ror_naming(config):
    depth, width = config["depth"], config["width"]
    return f"RoR-3-WRN-{depth}-{width}", f"ror3_wrn_{depth}_{width}"


def create_residual_of_residual(
    input_shape=None,
    classes=None,
    *,
    depth=None,
    width=None,
    dropout=None,
    include_top=True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classifier_activation="softmax",
    weight_decay=None,
    name=None,
    compile=True,
    include_preprocessing=None,
    precision=None,
    **seed_kwargs,
):
    """Build RoR-3 on a conv-BN-ReLU ResNet (RoR-3-56, RoR-3-110, RoR-3-164).

    Args:
        depth: 6n + 8 (56, 110, 164); defaults to 110.
        width: width multiplier k >= 1; defaults to 1.
        weight_decay: coupled L2; defaults to 1e-4 (the RoR paper on ResNets).
        compile: SGD momentum 0.9, lr 0.1, coupled L2, sparse CE, accuracy.
        **seed_kwargs: ``input_dim``, ``nb_classes``, ``N`` (the seed's: n =
            9N - 1 blocks per group, so N=2 is RoR-3-110), ``k``, ``verbose``.
        The other arguments are as in `create_wide_residual_network`.

    Returns:
        A `keras.Model`; output ``(B, classes)`` with ``include_top``.
    """
    return build_model(
        ROR, seed_kwargs, input_shape=input_shape, classes=classes, depth=depth, width=width, dropout=dropout,
        include_top=include_top, weights=weights, input_tensor=input_tensor, pooling=pooling,
        classifier_activation=classifier_activation, weight_decay=weight_decay, name=name, compile=compile,
        include_preprocessing=include_preprocessing,
        precision=precision,
    )


def create_pre_residual_of_residual(
    input_shape=None,
    classes=None,
    *,
    depth=None,
    width=None,
    dropout=None,
    include_top=True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classifier_activation="softmax",
    weight_decay=None,
    name=None,
    compile=True,
    include_preprocessing=None,
    precision=None,
    **seed_kwargs,
):
    """Build Pre-RoR-3 (width 1) or RoR-3-WRN-depth-width on pre-activation blocks.

    Args:
        depth: 6n + 4, counted as for a WRN; defaults to 40.
        width: widening factor k >= 1; defaults to 2 (RoR-3-WRN-40-2).
        weight_decay: coupled L2; defaults to 5e-4 (the WRN recipe).
        compile: SGD Nesterov 0.9, lr 0.1, coupled L2, sparse CE, accuracy.
        **seed_kwargs: ``input_dim``, ``nb_classes``, ``N`` (blocks per group:
            depth = 6N + 4, so N=6, k=2 is RoR-3-WRN-40-2), ``k``, ``verbose``.
        The other arguments are as in `create_wide_residual_network`.

    Returns:
        A `keras.Model`; output ``(B, classes)`` with ``include_top``.
    """
    return build_model(
        PRE_ROR, seed_kwargs, input_shape=input_shape, classes=classes, depth=depth, width=width, dropout=dropout,
        include_top=include_top, weights=weights, input_tensor=input_tensor, pooling=pooling,
        classifier_activation=classifier_activation, weight_decay=weight_decay, name=name, compile=compile,
        include_preprocessing=include_preprocessing,
        precision=precision,
    )


ROR = Family(
    builder=create_residual_of_residual,
    optimizer="ror",
    configure=cifar_configure(default_depth=110, default_width=1, blocks_per_group=ror_blocks_per_group),
    backbone=lambda x, config, units: ror3_backbone(x, config, units, preact=False),
    naming=_ror_naming,
    default_weight_decay=1e-4,
    # The seed's N gave n = 9N - 1 blocks per group (N=2: RoR-3-110).
    seed_depth=lambda n, config: 6 * (9 * n - 1) + 8,
)

PRE_ROR = Family(
    builder=create_pre_residual_of_residual,
    optimizer="pre_ror",
    configure=cifar_configure(default_depth=40, default_width=2, blocks_per_group=pre_ror_blocks_per_group),
    backbone=lambda x, config, units: ror3_backbone(x, config, units, preact=True),
    naming=_pre_ror_naming,
    default_weight_decay=5e-4,
    seed_depth=lambda n, config: 6 * n + 4,
)
