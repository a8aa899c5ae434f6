"""Wide Residual Networks, WRN-d-k (Zagoruyko & Komodakis, BMVC 2016, arXiv 1605.07146).

Stem 3x3 conv to 16 channels; three groups of n = (d - 4) / 6 pre-activation
basic blocks B(3,3) with widths 16k, 32k, 64k, the first block of groups 2 and
3 striding by 2; 1x1 projection shortcuts on the pre-activated input where the
width or stride changes; optional dropout between the two 3x3 convs; final
BN-ReLU, global average pooling and a dense classifier.  No conv biases.
Depth counts the stem, 6n block convs, the two strided projections and the
classifier (hence 6n + 4).
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


def wrn_blocks_per_group(depth, options=None):
    """n = (depth - 4) / 6 blocks per group, n >= 1 (WRN paper, Table 1)."""
    if depth < 10 or (depth - 4) % 6:
        raise depth_error("create_wide_residual_network", depth, "6n + 4", "10, 16, 22, 28, 40")
    return (depth - 4) // 6


def wrn_backbone(x, config, units=PLAIN):
    """Stem, three groups, final BN-ReLU: ``(B, H, W, C) -> (B, H/4, W/4, 64k)``.

    ``units`` makes the convolutions and BNs: plain layers, or shared convs
    with per-domain adapters and BNs (WRN-RAM, `keras_wrn.models.wrn_ram`).
    """
    x = stem_conv(x, units=units)
    for index, (filters, strides) in enumerate(zip(wide_group_filters(config["width"]), GROUP_STRIDES)):
        x = residual_group(x, "preact_basic", filters, config["blocks_per_group"], strides, config["dropout"],
                           f"group{index + 1}", units=units)
    return bn_relu(x, "final", units=units)


def _naming(config):
    depth, width = config["depth"], config["width"]
    return f"WRN-{depth}-{width}", f"wrn_{depth}_{width}"


def create_wide_residual_network(
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
    """Build WRN-depth-width as a Functional `keras.Model`.

    Args:
        input_shape: ``(H, W, C)``, channels-last; defaults to ``(32, 32, 3)``.
            H and W must be >= 8 (or None for a fully convolutional backbone).
        classes: number of classes of the classifier; defaults to 10.
        depth: 6n + 4 (10, 16, 22, 28, 40, ...); defaults to 28.
        width: widening factor k >= 1; defaults to 10 (WRN-28-10).
        dropout: rate in [0, 1) between the two 3x3 convs of each block;
            defaults to 0.0 (the paper uses 0.3 on CIFAR, 0.4 on SVHN).
        include_top: whether to add global pooling + ``Dense(classes)``.
        weights: None, a released weights name (`keras_wrn.list_weights`), or
            the path of a ``.weights.h5`` / ``.keras`` file.
        input_tensor: optional Keras tensor to use as the model input.
        pooling: None, ``"avg"`` or ``"max"``. With ``include_top=False``,
            None returns the ``(B, H/4, W/4, 64k)`` feature map and the others a
            pooled ``(B, 64k)`` vector; with ``include_top=True`` it selects the
            global pooling before the classifier (default average, the paper's).
        classifier_activation: activation of the classifier; ``"softmax"``
            (default) or None for logits.
        weight_decay: coupled L2 coefficient of the compiled optimizer;
            defaults to 5e-4 (the paper's).
        name: model name; defaults to ``"wrn_{depth}_{width}"``.
        compile: if True (default) and ``include_top``, compile with the paper's
            optimizer (SGD, Nesterov momentum 0.9, lr 0.1, coupled L2 on every
            trainable variable), sparse categorical cross-entropy and accuracy.
        include_preprocessing: put the release's input normalisation inside the
            model (``keras.layers.Normalization`` named ``preprocessing``), so it
            takes raw 0-255 RGB images, as keras.applications' EfficientNetV2
            does; default True when ``weights`` names a release, else False.
        precision: ``"float32"``, ``"bfloat16"``, ``"float16"`` (mixed: float32
            variables, BatchNorm statistics, classifier and loss) or ``"auto"``
            (bfloat16 where the CPU has AMX/AVX512-BF16 or the GPU is Ampere or
            later, else float32); default None follows Keras' global dtype
            policy (float32 unless set).  Weights load at any precision; see
            `keras_wrn.precision`.
        **seed_kwargs: the seed scripts' names, with their meaning:
            ``input_dim`` (input_shape), ``nb_classes`` (classes), ``N``
            (blocks per group: depth = 6N + 4), ``k`` (width), ``verbose``.

    Returns:
        A `keras.Model`; output ``(B, classes)`` with ``include_top``.

    Example:
        >>> model = create_wide_residual_network(classes=100, depth=28, width=10)
        >>> seed = create_wide_residual_network((32, 32, 3), nb_classes=100, N=4, k=10)
    """
    return build_model(
        WRN, seed_kwargs, input_shape=input_shape, classes=classes, depth=depth, width=width, dropout=dropout,
        include_top=include_top, weights=weights, input_tensor=input_tensor, pooling=pooling,
        classifier_activation=classifier_activation, weight_decay=weight_decay, name=name, compile=compile,
        include_preprocessing=include_preprocessing,
        precision=precision,
    )


WRN = Family(
    builder=create_wide_residual_network,
    optimizer="wrn",
    configure=cifar_configure(default_depth=28, default_width=10, blocks_per_group=wrn_blocks_per_group),
    backbone=wrn_backbone,
    naming=_naming,
    default_weight_decay=5e-4,
    seed_depth=lambda n, config: 6 * n + 4,
)
