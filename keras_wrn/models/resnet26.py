"""ResNet-26 of the residual-adapter papers (Rebuffi et al., NIPS 2017 / CVPR 2018) -- seed 001.

The reference code's network for 64x64 Visual Decathlon crops: stem 3x3 conv
to 32 + BN (no ReLU); three stages of 4 post-activation basic blocks, widths
64/128/256, each stage starting with stride 2; the downsampling shortcut is 2x2
average pooling with zero channels appended (no parameters); final BN-ReLU,
global average pooling, linear head (logits).  Each 3x3 conv is a conv unit of
`keras_wrn.blocks.AdapterUnits`::

    normal:    y = BN(conv3x3(x))
    series:    z = conv3x3(x);  y = BN(z + conv1x1(BN'(z)))
    parallel:  y = BN(conv3x3(x) + conv1x1(x))      (1x1 with the 3x3's stride)

`resnet26` builds one plain network (every layer its own and trainable): the
source network and the ``scratch`` / ``finetune`` modes.  The multi-domain form,
3x3 convs shared and frozen across domains, is `keras_wrn.adapters.MultiDomainNetwork`,
built by the same backbone from shared layer banks.
"""

from keras_wrn.blocks import bn_relu, conv_bn, resnet26_basic_block
from keras_wrn.models.base import Family, adapter_units, build_model, validate_adapter, validate_positions
from keras_wrn.optimizers import ADAPTER_WEIGHT_DECAY

RESNET26_LAYOUT = dict(stem=32, widths=(64, 128, 256), blocks=(4, 4, 4), strides=(2, 2, 2))


def resnet26_spec(width_factor=1.0):
    """The architecture record: `RESNET26_LAYOUT` with every width scaled by ``width_factor``."""
    if not isinstance(width_factor, (int, float)) or isinstance(width_factor, bool) or width_factor <= 0:
        raise ValueError(f"width_factor={width_factor!r} is not allowed; expected a number > 0.")
    return dict(RESNET26_LAYOUT, architecture="resnet26", stem=int(RESNET26_LAYOUT["stem"] * width_factor),
                widths=tuple(int(w * width_factor) for w in RESNET26_LAYOUT["widths"]))


def _configure(builder, config):
    validate_adapter(builder, config["adapter"])
    validate_positions(builder, config["positions"])
    try:
        config["spec"] = resnet26_spec(config["width_factor"])
    except ValueError as error:
        raise ValueError(f"{builder}: {error}") from None


def resnet26_backbone(x, config, units):
    """Stem, three stages, final BN-ReLU: ``(B, H, W, C) -> (B, H/8, W/8, 256 * width_factor)``."""
    spec = config["spec"]
    x = conv_bn(x, spec["stem"], 1, "stem_conv", units)
    for stage, (filters, count, stride) in enumerate(zip(spec["widths"], spec["blocks"], spec["strides"]), start=1):
        for block in range(1, count + 1):
            x = resnet26_basic_block(x, filters, stride if block == 1 else 1, f"stage{stage}_block{block}", units)
    return bn_relu(x, "final", units=units)


def _naming(config):
    adapter = f"_{config['adapter']}" if config["adapter"] else ""
    return "ResNet-26" + adapter.replace("_", "-"), "resnet26" + adapter


def resnet26(
    classes=None,
    input_shape=None,
    *,
    adapter=None,
    positions="all",
    width_factor=1.0,
    include_top=True,
    weights=None,
    input_tensor=None,
    pooling=None,
    classifier_activation=None,
    weight_decay=None,
    name=None,
    compile=True,
    include_preprocessing=None,
    precision=None,
):
    """Rebuffi et al.'s ResNet-26 as one plain network, optionally with residual adapters.

    Args:
        classes: classifier width; defaults to 10.
        input_shape: ``(H, W, C)``; defaults to ``(64, 64, 3)`` (the Decathlon's crops).
        adapter: None (plain), ``"series"`` or ``"parallel"`` adapters after every
            3x3 conv (or those ``positions`` selects).
        positions: ``"all"``, or shell patterns over conv unit names (``"stage3_*"``).
        width_factor: scales every width, as the reference code's ``factor``
            (1.0: 32 / 64 / 128 / 256; 0.5 is this package's CPU-sized source).
        include_top, weights, input_tensor, pooling, name: as in
            `create_wide_residual_network`.
        classifier_activation: None (default: logits, as the reference code) or ``"softmax"``.
        weight_decay: coupled L2 of the compiled optimizer; defaults to the
            adapters recipe's per-kind decay (1e-4 on adapters, 5e-4 elsewhere).
        compile: SGD momentum 0.9, lr 0.1, sparse CE, accuracy.
        include_preprocessing, precision: as in `create_wide_residual_network`.

    Returns:
        A `keras.Model`; output ``(B, classes)`` with ``include_top``.
    """
    return build_model(
        RESNET26, input_shape=input_shape, classes=classes, adapter=adapter, positions=positions,
        width_factor=width_factor, include_top=include_top, weights=weights, input_tensor=input_tensor,
        pooling=pooling, classifier_activation=classifier_activation, weight_decay=weight_decay, name=name,
        compile=compile, include_preprocessing=include_preprocessing,
        precision=precision,
    )


RESNET26 = Family(
    builder=resnet26,
    optimizer="adapters",
    configure=_configure,
    backbone=resnet26_backbone,
    naming=_naming,
    default_weight_decay=ADAPTER_WEIGHT_DECAY,
    default_input_shape=(64, 64, 3),
    units=adapter_units,
)
