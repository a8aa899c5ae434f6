"""Pre-activation ResNets (He, Zhang, Ren & Sun, ECCV 2016, arXiv 1603.05027) -- seed 004.

Stem 3x3 conv to 16; three stages of n pre-activation units, the first unit of
stages 2 and 3 striding by 2; final BN-ReLU, global average pooling, classifier.

- basic units (two 3x3 convs, widths 16k/32k/64k): depth = 6n + 2 (ResNet-110);
- bottleneck units (1x1-3x3-1x1, 16k->64k, 32k->128k, 64k->256k):
  depth = 9n + 2 (ResNet-164, ResNet-1001);
- ``width`` k > 1 gives the wide variant of seed 004 (widths x k; basic units below depth 164, like k = 1).

Block type by default follows the paper: basic units up to 110 layers,
bottleneck units from 164 layers on (many depths, e.g. 110 and 164, are of both
forms, so the depth alone cannot decide).
"""

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

BLOCK_TYPES = {"basic": "preact_basic", "bottleneck": "preact_bottleneck"}
# Depth = per_block_layers * n + 2 (stem and classifier).
LAYERS_PER_BLOCK = {"basic": 6, "bottleneck": 9}
BOTTLENECK_FROM_DEPTH = 164


def resolve_block_type(depth, block_type):
    if block_type is None:
        return "bottleneck" if depth >= BOTTLENECK_FROM_DEPTH else "basic"
    if block_type not in BLOCK_TYPES:
        raise ValueError(
            f"create_pre_activation_resnet: block_type={block_type!r} is not allowed; expected "
            f"None (basic below {BOTTLENECK_FROM_DEPTH} layers, bottleneck from it), 'basic' or "
            "'bottleneck'."
        )
    return block_type


def preact_blocks_per_group(depth, options):
    block_type = resolve_block_type(depth, options.get("block_type"))
    per_block = LAYERS_PER_BLOCK[block_type]
    if depth < per_block + 2 or (depth - 2) % per_block:
        raise depth_error(
            "create_pre_activation_resnet",
            depth,
            f"{per_block}n + 2",
            "20, 56, 110 (basic) or 164, 1001 (bottleneck)",
            extra=f" for {block_type} units (6n + 2 basic, 9n + 2 bottleneck)",
        )
    return (depth - 2) // per_block


def preact_backbone(x, config, units=PLAIN):
    """Stem, three stages, final BN-ReLU: ``(B, H, W, C) -> (B, H/4, W/4, 64k * expansion)``."""
    block = BLOCK_TYPES[resolve_block_type(config["depth"], config["block_type"])]
    x = stem_conv(x, units=units)
    for index, (filters, strides) in enumerate(zip(wide_group_filters(config["width"]), GROUP_STRIDES)):
        x = residual_group(x, block, filters, config["blocks_per_group"], strides, config["dropout"],
                           f"group{index + 1}", units=units)
    return bn_relu(x, "final", units=units)


def _seed_depth(n, options):
    block_type = options.get("block_type") or "basic"
    return LAYERS_PER_BLOCK[resolve_block_type(0, block_type)] * n + 2


def _naming(config):
    depth, width = config["depth"], config["width"]
    suffix = f"-w{width}" if width > 1 else ""
    return f"PreAct-ResNet-{depth}{suffix}", f"preact_resnet_{depth}" + suffix.replace("-", "_")


def create_pre_activation_resnet(
    input_shape=None,
    classes=None,
    *,
    depth=None,
    width=None,
    block_type=None,
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
    """Build a pre-activation ResNet (ResNet-110, -164, -1001 or the wide variant).

    Args:
        input_shape: ``(H, W, C)``, channels-last; defaults to ``(32, 32, 3)``.
        classes: number of classes; defaults to 10.
        depth: 6n + 2 for basic units, 9n + 2 for bottleneck units; defaults
            to 164 (bottleneck).
        width: width multiplier k >= 1 of every stage; defaults to 1.
        block_type: None (default: basic below 164 layers, bottleneck from 164
            on, as in the paper), ``"basic"`` or ``"bottleneck"``.
        dropout: rate in [0, 1) inside each unit; defaults to 0.0.
        include_top, weights, input_tensor, pooling, classifier_activation,
        name: as in `create_wide_residual_network`.
        weight_decay: coupled L2 of the compiled optimizer; defaults to 1e-4
            (the paper's).
        compile: if True (default) and ``include_top``, compile with SGD
            momentum 0.9, lr 0.1, coupled L2, sparse CE and accuracy.
        include_preprocessing, precision: as in `create_wide_residual_network`.
        **seed_kwargs: ``input_dim``, ``nb_classes``, ``N`` (units per stage:
            depth = 6N + 2, or 9N + 2 with ``block_type="bottleneck"``), ``k``
            (width), ``verbose``.

    Returns:
        A `keras.Model`; output ``(B, classes)`` with ``include_top``.
    """
    return build_model(
        PREACT, seed_kwargs, input_shape=input_shape, classes=classes, depth=depth, width=width,
        block_type=block_type, dropout=dropout, include_top=include_top, weights=weights, input_tensor=input_tensor,
        pooling=pooling, classifier_activation=classifier_activation, weight_decay=weight_decay, name=name,
        compile=compile, include_preprocessing=include_preprocessing,
        precision=precision,
    )


PREACT = Family(
    builder=create_pre_activation_resnet,
    optimizer="preact",
    configure=cifar_configure(default_depth=164, default_width=1, blocks_per_group=preact_blocks_per_group),
    backbone=preact_backbone,
    naming=_naming,
    default_weight_decay=1e-4,
    seed_depth=_seed_depth,
)
