"""WRN-d-k with residual adapter modules, WRN-RAM (seed 000; Rebuffi et al.'s adapters on a WRN).

The WRN of `keras_wrn.models.wrn` built from adapter-aware conv units
(`keras_wrn.blocks.AdapterUnits`): a 1x1 adapter follows the stem, every 3x3
conv and every 1x1 shortcut projection; the convolutions are frozen (they hold
what every domain shares) unless ``train_shared``; BNs, adapters and the head
train.  The multi-domain form is `keras_wrn.adapters.wrn_ram(..., domains=...)`.
"""

from keras_wrn.models.base import (
    Family,
    adapter_units,
    build_model,
    cifar_configure,
    validate_adapter,
    validate_positions,
)
from keras_wrn.models.wrn import wrn_backbone, wrn_blocks_per_group
from keras_wrn.optimizers import ADAPTER_WEIGHT_DECAY

_configure_wrn = cifar_configure(default_depth=28, default_width=4, blocks_per_group=wrn_blocks_per_group)


def _configure(builder, config):
    validate_adapter(builder, config["adapter"])
    validate_positions(builder, config["positions"])
    if not isinstance(config["train_shared"], bool):
        raise ValueError(f"{builder}: train_shared must be True or False, got {config['train_shared']!r}.")
    _configure_wrn(builder, config)
    config["spec"] = dict(architecture="wrn", depth=config["depth"], width=config["width"])


def _naming(config):
    depth, width = config["depth"], config["width"]
    return f"WRN-{depth}-{width}-RAM", f"wrn_{depth}_{width}_ram"


def create_wrn_ram(
    input_shape=None,
    classes=None,
    *,
    depth=None,
    width=None,
    adapter="series",
    positions="all",
    train_shared=False,
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
    **seed_kwargs,
):
    """Build one WRN-RAM (default WRN-28-4 with series adapters, seed 000's network).

    Args:
        depth: 6n + 4; defaults to 28.
        width: widening factor k; defaults to 4.
        adapter: ``"series"`` (default), ``"parallel"`` or None.
        positions: ``"all"`` or shell patterns over conv names (``"group3_*"``).
        train_shared: train the convolutions too (default False: frozen).
        classifier_activation: None (default: logits) or ``"softmax"``.
        weight_decay: defaults to 1e-4 on adapters, 5e-4 elsewhere.
        **seed_kwargs: ``nb_classes``, ``N`` (depth = 6N + 4), ``k``, ``input_dim``, ``verbose``.
        The other arguments are as in `create_wide_residual_network`.

    Returns:
        A compiled `keras.Model`; output ``(B, classes)`` logits with ``include_top``.
    """
    return build_model(
        WRN_RAM, seed_kwargs, input_shape=input_shape, classes=classes, depth=depth, width=width, adapter=adapter,
        positions=positions, train_shared=train_shared, include_top=include_top, weights=weights,
        input_tensor=input_tensor, pooling=pooling, classifier_activation=classifier_activation,
        weight_decay=weight_decay, name=name, compile=compile,
        include_preprocessing=include_preprocessing,
        precision=precision,
    )


WRN_RAM = Family(
    builder=create_wrn_ram,
    optimizer="adapters",
    configure=_configure,
    backbone=wrn_backbone,
    naming=_naming,
    default_weight_decay=ADAPTER_WEIGHT_DECAY,
    seed_depth=lambda n, config: 6 * n + 4,
    units=adapter_units,
)
