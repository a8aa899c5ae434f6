"""What every family builder shares: arguments, seed aliases, validation, head, compile.

A family (WRN, pre-act ResNet, RoR-3, Pre-RoR-3) is described by a `Family`
record: its defaults, how its depth maps to blocks per group, how the seeds'
``N`` maps to depth, and a backbone function.  `build_model` runs the fixed
order every builder follows (KerasHub style): resolve aliases and defaults ->
validate everything (``ValueError`` quoting the value and what is allowed) ->
build the graph -> load weights -> compile.  Nothing is created before the
arguments are known to be valid.
"""

import dataclasses
import os
from typing import Callable

import keras
from keras import layers

from keras_wrn.blocks import conv2d
from keras_wrn.optimizers import paper_optimizer

DEFAULT_INPUT_SHAPE = (32, 32, 3)
DEFAULT_CLASSES = 10
# Smallest spatial side accepted: every family downsamples by 4 (two stride-2
# groups) and 8 is the smallest side that still leaves a 2x2 final map.
MIN_INPUT_SIDE = 8
POOLING_MODES = (None, "avg", "max")

# Seed scripts' argument names (titu1994's WRN/RoR, astha-chem's WRN-RAM) -> ours.
SEED_ALIASES = {"input_dim": "input_shape", "nb_classes": "classes", "k": "width", "N": "depth"}


@dataclasses.dataclass(frozen=True)
class Family:
    """Data describing one model family; see the modules in `keras_wrn.models`."""

    key: str  # "wrn", "preact", "ror", "pre_ror": selects the paper optimizer
    builder: str  # public builder name, used in error messages
    default_depth: int
    default_width: int
    default_weight_decay: float
    # (depth, options) -> blocks per group; raises ValueError for a bad depth.
    blocks_per_group: Callable
    # (N, options) -> depth, with the seed script's meaning of N.
    seed_depth: Callable
    # (x, blocks_per_group, config) -> feature map after the final activation.
    backbone: Callable
    # config -> ("WRN-28-10", "wrn_28_10"): display and default model name.
    naming: Callable
    # Family-specific keyword arguments and their defaults (e.g. block_type).
    options: tuple = ()


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _apply_seed_aliases(family, args, seed_kwargs):
    """Fold the seed names (``nb_classes``, ``N``, ...) into ``args`` in place."""
    verbose = seed_kwargs.pop("verbose", 0)
    for alias in list(seed_kwargs):
        if alias not in SEED_ALIASES:
            raise TypeError(
                f"{family.builder}() got an unexpected keyword argument {alias!r}; "
                f"seed aliases accepted: {sorted(SEED_ALIASES) + ['verbose']}."
            )
    for alias, value in seed_kwargs.items():
        target = SEED_ALIASES[alias]
        if alias == "N":
            if not _is_int(value) or value < 1:
                raise ValueError(
                    f"{family.builder}: N={value!r} is not allowed; N (the seed scripts' "
                    "depth parameter) must be an integer >= 1."
                )
            value = family.seed_depth(value, args)
        elif alias == "input_dim" and isinstance(value, list):
            value = tuple(value)
        current = args[target]
        if current is not None and current != value:
            shown = f"{alias}={seed_kwargs[alias]!r}"
            if alias == "N":
                shown += f" (depth {value})"
            raise ValueError(
                f"{family.builder}: got both {shown} and {target}={current!r}; `{alias}` is the "
                f"seed scripts' name for `{target}`, give one of them (or the same value)."
            )
        args[target] = value
    return verbose


def _validate_input_shape(builder, input_shape):
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(
            f"{builder}: input_shape={input_shape!r} is not allowed; expected "
            "(height, width, channels), e.g. (32, 32, 3)."
        )
    height, width, channels = input_shape
    if not _is_int(channels) or channels < 1:
        raise ValueError(
            f"{builder}: input_shape={tuple(input_shape)!r} has channels={channels!r}; "
            "the last entry is the channel count (channels-last) and must be an integer >= 1."
        )
    for side in (height, width):
        if side is None:
            continue
        if not _is_int(side) or side < MIN_INPUT_SIDE:
            hint = ""
            if _is_int(height) and height <= 4 and _is_int(channels) and channels >= MIN_INPUT_SIDE:
                hint = " It looks channels-first; keras_wrn is channels-last: use (H, W, C)."
            raise ValueError(
                f"{builder}: input_shape={tuple(input_shape)!r} is too small; height and width "
                f"must be integers >= {MIN_INPUT_SIDE} (or None), since the network downsamples "
                f"by 4 and needs at least a 2x2 final feature map.{hint}"
            )
    return tuple(input_shape)


def resolve_config(family, args, seed_kwargs):
    """Aliases, defaults and validation. Returns the complete configuration dict.

    Raises:
        ValueError: for any argument outside its allowed values, naming it.
        TypeError: for an unknown keyword argument.
    """
    builder = family.builder
    args = dict(args)
    args["verbose"] = _apply_seed_aliases(family, args, dict(seed_kwargs))

    input_tensor = args["input_tensor"]
    if input_tensor is not None:
        if not keras.backend.is_keras_tensor(input_tensor):
            raise ValueError(
                f"{builder}: input_tensor must be a Keras tensor (from keras.Input or a layer), "
                f"got {type(input_tensor).__name__}."
            )
        tensor_shape = tuple(input_tensor.shape[1:])
        if args["input_shape"] is not None and tuple(args["input_shape"]) != tensor_shape:
            raise ValueError(
                f"{builder}: input_shape={tuple(args['input_shape'])!r} does not match the shape "
                f"of input_tensor {tensor_shape!r}; give one of them."
            )
        args["input_shape"] = tensor_shape
    if args["input_shape"] is None:
        args["input_shape"] = DEFAULT_INPUT_SHAPE
    args["input_shape"] = _validate_input_shape(builder, args["input_shape"])

    for key, default in (
        ("classes", DEFAULT_CLASSES),
        ("depth", family.default_depth),
        ("width", family.default_width),
        ("dropout", 0.0),
        ("weight_decay", family.default_weight_decay),
    ):
        if args[key] is None:
            args[key] = default

    if not isinstance(args["include_top"], bool):
        raise ValueError(f"{builder}: include_top must be True or False, got {args['include_top']!r}.")
    if not _is_int(args["classes"]) or args["classes"] < 1:
        raise ValueError(
            f"{builder}: classes={args['classes']!r} is not allowed; expected an integer >= 1."
        )
    if not _is_int(args["width"]) or args["width"] < 1:
        raise ValueError(
            f"{builder}: width={args['width']!r} is not allowed; the widening factor k must be "
            "an integer >= 1."
        )
    dropout = args["dropout"]
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
        raise ValueError(
            f"{builder}: dropout={dropout!r} is not allowed; expected a float in [0, 1)."
        )
    args["dropout"] = float(dropout)
    if args["pooling"] not in POOLING_MODES:
        raise ValueError(
            f"{builder}: pooling={args['pooling']!r} is not allowed; expected one of "
            f"{POOLING_MODES} (None keeps the feature map when include_top=False)."
        )
    decay = args["weight_decay"]
    if not isinstance(decay, (int, float)) or isinstance(decay, bool) or decay < 0:
        raise ValueError(
            f"{builder}: weight_decay={decay!r} is not allowed; expected a float >= 0."
        )
    weights = args["weights"]
    if weights is not None:
        from keras_wrn.weights import is_weights_name, weights_info

        if not isinstance(weights, (str, os.PathLike)):
            raise ValueError(
                f"{builder}: weights={weights!r} is not allowed; expected None, a released weights "
                "name (keras_wrn.list_weights()) or the path of a .weights.h5 / .keras file."
            )
        if is_weights_name(weights):
            entry = weights_info(weights)
            if entry["builder"] != builder:
                raise ValueError(f"{builder}: weights={weights!r} were released for {entry['builder']}, "
                                 f"not {builder}; use keras_wrn.create_model({entry['model']!r}, weights=...).")
        elif not os.path.isfile(weights):
            from keras_wrn.weights import list_weights

            raise ValueError(
                f"{builder}: weights={os.fspath(weights)!r} is neither a released weights name "
                f"({', '.join(list_weights()) or 'none yet'}) nor an existing .weights.h5 / .keras file."
            )
    if args["name"] is not None and not isinstance(args["name"], str):
        raise ValueError(f"{builder}: name={args['name']!r} is not allowed; expected a string.")
    if not isinstance(args["compile"], bool):
        raise ValueError(f"{builder}: compile must be True or False, got {args['compile']!r}.")

    # Depth last: its message may depend on the family options checked above.
    if not _is_int(args["depth"]):
        raise ValueError(f"{builder}: depth={args['depth']!r} is not allowed; expected an integer.")
    args["blocks_per_group"] = family.blocks_per_group(args["depth"], args)
    return args


def classifier_head(x, include_top, pooling, classes, classifier_activation):
    """Global pooling and the dense classifier (or the bare features).

    ``include_top=True``: global average pooling (the papers; ``pooling="max"``
    picks max pooling instead) and ``Dense(classes)`` named ``predictions``.
    ``include_top=False``: ``pooling=None`` returns the 4D feature map,
    ``"avg"``/``"max"`` a pooled ``(B, C)`` vector.
    """
    if include_top or pooling is not None:
        if pooling == "max":
            x = layers.GlobalMaxPooling2D(name="max_pool")(x)
        else:
            x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    return x


def compile_for_paper(model, family_key, weight_decay, classifier_activation):
    """Compile with the paper's SGD, coupled L2 ``weight_decay``, sparse CE, accuracy."""
    from_logits = classifier_activation in (None, "linear")
    model.compile(
        optimizer=paper_optimizer(family_key, weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    return model


def build_model(family, args):
    """Validate ``args`` (a builder's ``locals()``) and build the Functional model."""
    args = dict(args)
    seed_kwargs = args.pop("seed_kwargs")
    config = resolve_config(family, args, seed_kwargs)

    display_name, default_name = family.naming(config)
    if config["input_tensor"] is not None:
        inputs = config["input_tensor"]
    else:
        inputs = keras.Input(shape=config["input_shape"], name="input")
    features = family.backbone(inputs, config["blocks_per_group"], config)
    outputs = classifier_head(
        features,
        config["include_top"],
        config["pooling"],
        config["classes"],
        config["classifier_activation"],
    )
    model_inputs = inputs
    if config["input_tensor"] is not None:
        model_inputs = keras.utils.get_source_inputs(inputs)
    model = keras.Model(model_inputs, outputs, name=config["name"] or default_name)

    if config["weights"] is not None:
        load_into(model, family, config)
    if config["compile"] and config["include_top"]:
        compile_for_paper(model, family.key, config["weight_decay"], config["classifier_activation"])
    if config["verbose"]:
        print(f"{display_name} created: {model.count_params():,} parameters.")
    return model


def load_into(model, family, config):
    """Load ``config["weights"]`` into ``model``: the whole model, or the backbone only.

    As in keras.applications, a ``.weights.h5`` whose classifier width differs
    from ``classes``, or ``include_top=False``, loads every layer but the head:
    the file's own architecture is rebuilt, loaded (Keras checks every shape)
    and copied layer by layer (see `keras_wrn.weights.load_backbone`).
    """
    import inspect

    from keras_wrn import models
    from keras_wrn.weights import is_weights_name, load_backbone, resolve_weights, weight_file_classes

    path = os.fspath(config["weights"])
    if is_weights_name(path):
        path, entry = resolve_weights(path)  # size and sha256 checked before anything loads
        for key, value in entry["arguments"].items():
            if key in ("depth", "width") and config.get(key) != value:
                raise ValueError(f"weights={entry['name']!r} are for {key}={value!r}, but the model has "
                                 f"{key}={config.get(key)!r}; build {entry['model']!r} to use them.")
    file_classes = weight_file_classes(path) if path.endswith(".weights.h5") else None
    if not path.endswith(".weights.h5") or (config["include_top"] and file_classes == config["classes"]):
        try:
            model.load_weights(path)
        except ValueError as error:
            raise ValueError(f"weights={path!r}: does not fit {model.name}: {error}") from None
        return

    builder = getattr(models, family.builder)
    parameters = inspect.signature(builder).parameters
    fixed = {key: config[key] for key in parameters if key in config and key not in (
        "weights", "classes", "include_top", "compile", "input_tensor", "name", "pooling", "verbose")}
    fixed["input_shape"] = tuple(model.input_shape[1:])

    def build_source(classes):
        return builder(**fixed, classes=classes or 1, include_top=classes is not None, compile=False)

    load_backbone(model, path, build_source)


def wide_group_filters(width):
    """Per-group widths of the CIFAR families: 16k, 32k, 64k."""
    return [16 * width, 32 * width, 64 * width]


GROUP_STRIDES = (1, 2, 2)


def depth_error(family_builder, depth, form, examples, extra=""):
    return ValueError(
        f"{family_builder}: depth={depth!r} is not allowed; expected depth = {form} with "
        f"n >= 1 blocks per group{extra}, e.g. {examples}."
    )


def stem_conv(x, name="stem_conv", filters=16):
    """The CIFAR stem: one bias-free 3x3 convolution to 16 channels."""
    return conv2d(x, filters, 3, 1, name)
