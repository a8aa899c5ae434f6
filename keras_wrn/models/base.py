"""What every family builder shares: arguments, seed aliases, validation, head, compile.

A family (WRN, pre-act ResNet, RoR-3, Pre-RoR-3, ResNet-26, WRN-RAM) is one
`Family` record: its builder, its own arguments' defaults and checks
(``configure``), how the seeds' ``N`` maps to depth, and a backbone function.
`build_model` runs the fixed order every builder follows (KerasHub style):
resolve aliases and defaults -> validate everything (``ValueError`` quoting the
value and what is allowed) -> build the graph -> load weights -> compile.
Nothing is created before the arguments are known to be valid.
"""

import dataclasses
import os
from typing import Callable, Optional

import keras
import numpy as np
from keras import layers

from keras_wrn import weights as released
from keras_wrn.blocks import ADAPTERS, PLAIN, AdapterUnits, LayerBank
from keras_wrn.optimizers import paper_optimizer, validate_l2
from keras_wrn.precision import building_with, resolve_precision

DEFAULT_INPUT_SHAPE = (32, 32, 3)
DEFAULT_CLASSES = 10
# Smallest spatial side accepted: every family downsamples by 4 (two stride-2
# groups) and 8 is the smallest side that still leaves a 2x2 final map.
MIN_INPUT_SIDE = 8
POOLING_MODES = (None, "avg", "max")
GROUP_STRIDES = (1, 2, 2)

# Seed scripts' argument names (titu1994's WRN/RoR, astha-chem's WRN-RAM) -> ours.
SEED_ALIASES = {"input_dim": "input_shape", "nb_classes": "classes", "k": "width", "N": "depth"}

# Arguments every builder takes (keras.applications' names), besides its family's own.
COMMON_ARGUMENTS = ("input_shape", "classes", "include_top", "weights", "input_tensor", "pooling",
                    "classifier_activation", "weight_decay", "name", "compile", "include_preprocessing",
                    "precision")


@dataclasses.dataclass(frozen=True)
class Family:
    """Data describing one model family; see the modules in `keras_wrn.models`."""

    builder: Callable  # the public builder; its name appears in error messages
    optimizer: str  # key of `keras_wrn.optimizers.PAPER_OPTIMIZERS`
    # (builder name, config) -> None: fill the family's own defaults and validate them, in place.
    configure: Callable
    # (x, config, units) -> feature map after the final activation.
    backbone: Callable
    # config -> ("WRN-28-10", "wrn_28_10"): display and default model name.
    naming: Callable
    default_weight_decay: object
    # (N, config) -> depth, with the seed script's meaning of N; None: no N.
    seed_depth: Optional[Callable] = None
    default_input_shape: tuple = DEFAULT_INPUT_SHAPE
    # config -> the units that make the backbone's layers (`keras_wrn.blocks.PLAIN` by default).
    units: Callable = lambda config: PLAIN

    @property
    def name(self):
        return self.builder.__name__


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _apply_seed_aliases(family, args, seed_kwargs):
    """Fold the seed names (``nb_classes``, ``N``, ...) into ``args`` in place."""
    verbose = seed_kwargs.pop("verbose", 0)
    accepted = [alias for alias, target in SEED_ALIASES.items()
                if target in args and (alias != "N" or family.seed_depth is not None)]
    for alias in list(seed_kwargs):
        if alias not in accepted:
            raise TypeError(
                f"{family.name}() got an unexpected keyword argument {alias!r}; "
                f"seed aliases accepted: {sorted(accepted) + ['verbose']}."
            )
    for alias, value in seed_kwargs.items():
        target = SEED_ALIASES[alias]
        if alias == "N":
            if not is_int(value) or value < 1:
                raise ValueError(
                    f"{family.name}: N={value!r} is not allowed; N (the seed scripts' "
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
                f"{family.name}: got both {shown} and {target}={current!r}; `{alias}` is the "
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
    if not is_int(channels) or channels < 1:
        raise ValueError(
            f"{builder}: input_shape={tuple(input_shape)!r} has channels={channels!r}; "
            "the last entry is the channel count (channels-last) and must be an integer >= 1."
        )
    for side in (height, width):
        if side is None:
            continue
        if not is_int(side) or side < MIN_INPUT_SIDE:
            hint = ""
            if is_int(height) and height <= 4 and is_int(channels) and channels >= MIN_INPUT_SIDE:
                hint = " It looks channels-first; keras_wrn is channels-last: use (H, W, C)."
            raise ValueError(
                f"{builder}: input_shape={tuple(input_shape)!r} is too small; height and width "
                f"must be integers >= {MIN_INPUT_SIDE} (or None), since the network downsamples "
                f"by 4 and needs at least a 2x2 final feature map.{hint}"
            )
    return tuple(input_shape)


def _validate_weights(builder, weights):
    if weights is None:
        return
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(
            f"{builder}: weights={weights!r} is not allowed; expected None, a released weights "
            "name (keras_wrn.list_weights()) or the path of a .weights.h5 / .keras file."
        )
    if released.is_weights_name(weights):
        entry = released.weights_info(weights)
        if entry["builder"] != builder:
            raise ValueError(f"{builder}: weights={weights!r} were released for {entry['builder']}, "
                             f"not {builder}; use keras_wrn.create_model({entry['model']!r}, weights=...).")
    elif not os.path.isfile(weights):
        raise ValueError(
            f"{builder}: weights={os.fspath(weights)!r} is neither a released weights name "
            f"({', '.join(released.list_weights()) or 'none yet'}) nor an existing .weights.h5 / .keras file."
        )


def _python_scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _resolve_preprocessing(builder, include, weights):
    """The release's ``{"mean", "std"}`` to build into the model, or None.

    ``include=None`` means: when ``weights`` names a release.  A weights *file*
    carries no statistics, so ``include=True`` needs a release.
    """
    release = weights is not None and released.is_weights_name(weights)
    include = release if include is None else include
    if not isinstance(include, bool):
        raise ValueError(f"{builder}: include_preprocessing={include!r} is not allowed; expected True, False or None.")
    if not include:
        return None
    if not release:
        raise ValueError(
            f"{builder}: include_preprocessing=True needs weights=<a released name> (its normalisation goes into "
            "the model); with other weights, put your own keras.layers.Normalization in front of the model."
        )
    mean, std, _, _ = released.preprocessing_info(weights)
    return dict(mean=list(mean), std=list(std))


def preprocessing_layer(statistics):
    """``(x - mean) / std`` per channel as a Keras layer (``Normalization``, saved with the model)."""
    return layers.Normalization(mean=statistics["mean"], variance=[s * s for s in statistics["std"]],
                                name="preprocessing", dtype="float32")


def resolve_config(family, args, seed_kwargs):
    """Aliases, defaults and validation. Returns the complete configuration dict.

    Raises:
        ValueError: for any argument outside its allowed values, naming it.
        TypeError: for an unknown keyword argument.
    """
    builder = family.name
    # NumPy scalars (np.int64(16), np.float32(0.3)) mean their Python values.
    args = {key: _python_scalar(value) for key, value in args.items()}
    seed_kwargs = {key: _python_scalar(value) for key, value in seed_kwargs.items()}
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
        args["input_shape"] = family.default_input_shape
    args["input_shape"] = _validate_input_shape(builder, args["input_shape"])

    if args["classes"] is None:
        args["classes"] = DEFAULT_CLASSES
    if args["weight_decay"] is None:
        args["weight_decay"] = family.default_weight_decay

    if not isinstance(args["include_top"], bool):
        raise ValueError(f"{builder}: include_top must be True or False, got {args['include_top']!r}.")
    if not is_int(args["classes"]) or args["classes"] < 1:
        raise ValueError(
            f"{builder}: classes={args['classes']!r} is not allowed; expected an integer >= 1."
        )
    if args["pooling"] not in POOLING_MODES:
        raise ValueError(
            f"{builder}: pooling={args['pooling']!r} is not allowed; expected one of "
            f"{POOLING_MODES} (None keeps the feature map when include_top=False)."
        )
    try:
        validate_l2(args["weight_decay"])
    except ValueError:
        raise ValueError(
            f"{builder}: weight_decay={args['weight_decay']!r} is not allowed; expected a float >= 0 "
            '(or a {variable-path pattern: float} dict ending in "*").'
        ) from None
    _validate_weights(builder, args["weights"])
    args["preprocessing"] = _resolve_preprocessing(builder, args.get("include_preprocessing"), args["weights"])
    if args["name"] is not None and (not isinstance(args["name"], str) or not args["name"] or "/" in args["name"]):
        raise ValueError(f"{builder}: name={args['name']!r} is not allowed; expected a non-empty string without '/'.")
    try:
        keras.activations.get(args["classifier_activation"])
    except (ValueError, TypeError):
        raise ValueError(f"{builder}: classifier_activation={args['classifier_activation']!r} is not allowed; "
                         "expected None (logits), 'softmax' or another Keras activation.") from None
    if not isinstance(args["compile"], bool):
        raise ValueError(f"{builder}: compile must be True or False, got {args['compile']!r}.")
    args["precision"] = resolve_precision(args.get("precision"), f"{builder}: precision")
    family.configure(builder, args)
    return args


def classifier_head(x, include_top, pooling, classes, classifier_activation, units=PLAIN):
    """Global pooling and the dense classifier (or the bare features).

    ``include_top=True``: global average pooling (the papers; ``pooling="max"``
    picks max pooling instead) and ``Dense(classes)`` named ``predictions``.
    ``include_top=False``: ``pooling=None`` returns the 4D feature map,
    ``"avg"``/``"max"`` a pooled ``(B, C)`` vector.  The classifier computes in
    float32 at every precision (see `keras_wrn.precision`).
    """
    if include_top or pooling is not None:
        if pooling == "max":
            x = layers.GlobalMaxPooling2D(name="max_pool")(x)
        else:
            x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if include_top:
        x = units.layer("predictions", lambda name: layers.Dense(classes, activation=classifier_activation,
                                                                   name=name, dtype="float32"))(x)
    return x


def compile_for_paper(model, optimizer, weight_decay, classifier_activation):
    """Compile with the paper's SGD, coupled L2 ``weight_decay``, sparse CE, accuracy."""
    from_logits = classifier_activation in (None, "linear")
    model.compile(
        optimizer=paper_optimizer(optimizer, weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        # Explicit: Keras' "accuracy" turns binary when the output has one unit.
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    return model


def build_model(family, seed_kwargs=None, *, units=None, **arguments):
    """Validate a builder's ``arguments`` and build its Functional model.

    ``arguments`` are `COMMON_ARGUMENTS` and the family's own; ``seed_kwargs``
    the seed scripts' aliases.  ``units`` (for multi-domain networks) makes the
    backbone's and head's layers from existing banks; by default the family's.
    """
    config = resolve_config(family, arguments, seed_kwargs or {})
    return build_from_config(family, config, units)


def build_from_config(family, config, units=None):
    """The model of an already validated ``config`` (see `resolve_config`), at ``config["precision"]``."""
    with building_with(config.get("precision", "float32")):
        return _build_from_config(family, config, units)


def _build_from_config(family, config, units):
    units = family.units(config) if units is None else units
    display_name, default_name = family.naming(config)
    if config["input_tensor"] is not None:
        inputs = config["input_tensor"]
    else:
        inputs = keras.Input(shape=config["input_shape"], name="input")
    x = preprocessing_layer(config["preprocessing"])(inputs) if config.get("preprocessing") else inputs
    features = family.backbone(x, config, units)
    outputs = classifier_head(features, config["include_top"], config["pooling"], config["classes"],
                              config["classifier_activation"], units)
    model_inputs = inputs
    if config["input_tensor"] is not None:
        model_inputs = keras.utils.get_source_inputs(inputs)
    model = keras.Model(model_inputs, outputs, name=config["name"] or default_name)

    if config["weights"] is not None:
        load_into(model, family, config)
    if config["compile"] and config["include_top"]:
        compile_for_paper(model, family.optimizer, config["weight_decay"], config["classifier_activation"])
    if config["verbose"]:
        print(f"{display_name} created: {model.count_params():,} parameters.")
    return model


def load_into(model, family, config):
    """Load ``config["weights"]`` into ``model``: the whole model, or the backbone only.

    As in keras.applications, a ``.weights.h5`` whose classifier width differs
    from ``classes``, or ``include_top=False``, loads every layer but the head:
    the file's own architecture is rebuilt with this family's configuration,
    loaded (Keras checks every shape) and copied layer by layer (see
    `keras_wrn.weights.load_backbone`).
    """
    path = os.fspath(config["weights"])
    if released.is_weights_name(path):
        path, entry = released.resolve_weights(path)  # size and sha256 checked before anything loads
        for key, value in entry["arguments"].items():
            if key not in ("classes", "input_shape") and config.get(key) != value:
                raise ValueError(f"weights={entry['name']!r} are for {key}={value!r}, but the model has "
                                 f"{key}={config.get(key)!r}; build {entry['model']!r} to use them.")
    file_classes = released.weight_file_classes(path) if path.endswith(".weights.h5") else None
    if not path.endswith(".weights.h5") or (config["include_top"] and file_classes == config["classes"]):
        try:
            model.load_weights(path)
        except ValueError as error:
            raise ValueError(f"weights={path!r}: does not fit {model.name}: {error}") from None
        return

    source_config = dict(config, weights=None, compile=False, input_tensor=None, name=None, pooling=None,
                         verbose=0, input_shape=tuple(model.input_shape[1:]))

    def build_source(classes):
        return build_from_config(family, dict(source_config, classes=classes or 1, include_top=classes is not None))

    released.load_backbone(model, path, build_source)


def wide_group_filters(width):
    """Per-group widths of the CIFAR families: 16k, 32k, 64k."""
    return [16 * width, 32 * width, 64 * width]


def depth_error(family_builder, depth, form, examples, extra=""):
    return ValueError(
        f"{family_builder}: depth={depth!r} is not allowed; expected depth = {form} with "
        f"n >= 1 blocks per group{extra}, e.g. {examples}."
    )


def cifar_configure(default_depth, default_width, blocks_per_group):
    """``configure`` of the CIFAR families: depth, width and dropout defaults and checks.

    ``blocks_per_group(depth, config)`` returns n or raises ``ValueError``; the
    result is stored as ``config["blocks_per_group"]``.
    """

    def configure(builder, config):
        if config["depth"] is None:
            config["depth"] = default_depth
        if config["width"] is None:
            config["width"] = default_width
        if config.get("dropout") is None:
            config["dropout"] = 0.0
        if not is_int(config["width"]) or config["width"] < 1:
            raise ValueError(
                f"{builder}: width={config['width']!r} is not allowed; the widening factor k must be "
                "an integer >= 1."
            )
        dropout = config["dropout"]
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout < 1:
            raise ValueError(
                f"{builder}: dropout={dropout!r} is not allowed; expected a float in [0, 1)."
            )
        config["dropout"] = float(dropout)
        # Depth last: its message may depend on the family options checked above.
        if not is_int(config["depth"]):
            raise ValueError(f"{builder}: depth={config['depth']!r} is not allowed; expected an integer.")
        config["blocks_per_group"] = blocks_per_group(config["depth"], config)

    return configure


def stem_conv(x, name="stem_conv", filters=16, units=PLAIN):
    """The CIFAR stem: one bias-free 3x3 convolution to 16 channels."""
    return units.conv(x, filters, 3, 1, name)


def validate_adapter(builder, adapter):
    """Families with residual adapters (ResNet-26, WRN-RAM): None, "series" or "parallel"."""
    if adapter not in ADAPTERS:
        raise ValueError(f"{builder}: adapter={adapter!r} is not allowed; expected one of {list(ADAPTERS)}.")


def validate_positions(builder, positions):
    """Which convolutions get adapters: "all", or shell patterns over conv names."""
    if positions == "all":
        return
    patterns = [positions] if isinstance(positions, str) else positions
    if not isinstance(patterns, (list, tuple)) or not patterns or not all(isinstance(p, str) for p in patterns):
        raise ValueError(f"{builder}: positions={positions!r} is not allowed; expected 'all' or shell patterns "
                         "over conv unit names such as 'stage3_*'.")


def adapter_units(config):
    """Fresh banks for one network; the shared convolutions train unless frozen (``train_shared=False``)."""
    return AdapterUnits(LayerBank(trainable=config.get("train_shared", True)), LayerBank(), config["adapter"],
                        config["positions"])
