"""Named variants: ``create_model("wrn-28-10")``, ``create_model("wrn-16-1.cifar10-jpeg-e10")``, `verify_weights`.

Variants are data (`keras_wrn.variants`): a name maps to a family and the
arguments that define it; anything else is passed through to the family's
builder.  A released weights name stands for its architecture with its
weights (KerasHub's ``from_preset`` style).
"""

import difflib

from keras_wrn.models import (
    create_pre_activation_resnet,
    create_pre_residual_of_residual,
    create_residual_of_residual,
    create_wide_residual_network,
    create_wrn_ram,
    resnet26,
)
from keras_wrn.variants import MODEL_VARIANTS, list_models
from keras_wrn.weights import is_weights_name, list_weights, resolve_weights, weights_info

__all__ = ["BUILDERS", "create_model", "list_models", "model_args", "verify_weights"]

BUILDERS = {
    "wrn": create_wide_residual_network,
    "preact": create_pre_activation_resnet,
    "ror": create_residual_of_residual,
    "pre-ror": create_pre_residual_of_residual,
    "resnet26": resnet26,
    "wrn-ram": create_wrn_ram,
}


def model_args(name):
    """``(builder, arguments)`` defining the registered variant ``name``."""
    if name not in MODEL_VARIANTS:
        close = difflib.get_close_matches(str(name), list(MODEL_VARIANTS) + list_weights(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"create_model: unknown model name={name!r}.{hint} Known names: {', '.join(list_models())}; "
            f"released weights: {', '.join(list_weights()) or 'none'}."
        )
    family, arguments = MODEL_VARIANTS[name]
    return BUILDERS[family], dict(arguments)


def create_model(model_name, /, **kwargs):
    """Build the registered variant ``model_name`` (or a release's, by its name); ``kwargs`` go to its builder.

    Every variant takes keras.applications' arguments (``include_top``,
    ``weights``, ``input_tensor``, ``input_shape``, ``pooling``, ``classes``,
    ``classifier_activation``, ``name``) and ``compile``.  Arguments that define
    the variant (e.g. ``depth`` for ``"wrn-28-10"``) may be repeated with the
    same value but not changed.
    """
    if model_name not in MODEL_VARIANTS and is_weights_name(model_name):
        return _create_from_release(model_name, kwargs)
    builder, arguments = model_args(model_name)
    for key, value in kwargs.items():
        if key in arguments and arguments[key] != value:
            raise ValueError(
                f"create_model: {key}={value!r} contradicts the variant {model_name!r}, which has "
                f"{key}={arguments[key]!r}; use another variant or call {builder.__name__} directly."
            )
    arguments.update(kwargs)
    return builder(**arguments)


def _create_from_release(name, kwargs):
    """The release's architecture with its weights; ``classes``/``input_shape`` may differ (new head, new size)."""
    entry = weights_info(name)
    if kwargs.get("weights", name) != name:
        raise ValueError(f"create_model: {name!r} names released weights; weights={kwargs['weights']!r} contradicts "
                         f"it (use create_model({entry['model']!r}, weights=...) for other weights).")
    kwargs = dict(kwargs, weights=name)
    kwargs.setdefault("classes", entry["arguments"]["classes"])
    kwargs.setdefault("input_shape", tuple(entry["arguments"]["input_shape"]))
    return create_model(entry["model"], **kwargs)


def verify_weights(name):
    """Check a release: hash and size, then that it loads into its model and the parameter count.

    Returns:
        dict with ``name, file, sha256, parameters`` (as measured).
    """
    path, entry = resolve_weights(name)
    model = create_model(entry["model"], **entry["arguments"], compile=False)
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(f"weights={name!r}: {path} does not load into {entry['model']}: {error}") from None
    parameters = model.count_params()
    if parameters != entry["parameters"]:
        raise ValueError(f"weights={name!r}: the model has {parameters:,} parameters, the manifest says "
                         f"{entry['parameters']:,}.")
    return dict(name=name, file=path, sha256=entry["sha256"], parameters=parameters)
