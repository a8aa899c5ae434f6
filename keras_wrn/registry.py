"""Named variants: ``create_model("wrn-28-10")``, ``list_models("wrn-*")``, `verify_weights`.

Variants are data (timm / torchvision style): a name maps to a builder and the
arguments that define it; anything else is passed through to the builder.
"""

import difflib
import fnmatch

from keras_wrn.models import (
    create_pre_activation_resnet,
    create_pre_residual_of_residual,
    create_residual_of_residual,
    create_wide_residual_network,
    create_wrn_ram,
    resnet26,
)
from keras_wrn.weights import resolve_weights

_WRN_VARIANTS = [(16, 1), (16, 2), (16, 4), (16, 8), (16, 10), (22, 8), (22, 10), (28, 10),
                 (28, 12), (40, 1), (40, 2), (40, 4), (40, 8), (40, 10)]

MODEL_VARIANTS = {
    # WRN paper, Tables 4-6 (plus WRN-16-1/16-2, the small ones used for tests and demos).
    **{f"wrn-{d}-{k}": (create_wide_residual_network, dict(depth=d, width=k)) for d, k in _WRN_VARIANTS},
    # Pre-activation ResNets (He et al. 2016, Table 2/4) and seed 004's wide variant.
    # The CIFAR depths 20/56 of He et al.'s family, with pre-activation units (small, quick to train).
    "preact-20": (create_pre_activation_resnet, dict(depth=20, block_type="basic")),
    "preact-56": (create_pre_activation_resnet, dict(depth=56, block_type="basic")),
    "preact-110": (create_pre_activation_resnet, dict(depth=110, block_type="basic")),
    "preact-164": (create_pre_activation_resnet, dict(depth=164, block_type="bottleneck")),
    "preact-1001": (create_pre_activation_resnet, dict(depth=1001, block_type="bottleneck")),
    "preact-wide-14-4": (create_pre_activation_resnet, dict(depth=14, width=4, block_type="basic")),
    # RoR-3 on conv-BN-ReLU ResNets (Zhang et al. 2016).
    "ror3-56": (create_residual_of_residual, dict(depth=56)),
    # Rebuffi et al.'s ResNet-26 (64x64 inputs), plain or with residual adapters; see keras_wrn.models.resnet26.
    "resnet26": (resnet26, dict(adapter=None)),
    "resnet26-adapters": (resnet26, dict(adapter="parallel")),
    # Half width (16 / 32 / 64 / 128, the reference code's factor=0.5): the CPU-sized source
    # network of the adapter proof on CIFAR-10 (README, "Residual adapters on real domains").
    "resnet26-w0.5": (resnet26, dict(adapter=None, width_factor=0.5)),
    "ror3-110": (create_residual_of_residual, dict(depth=110)),
    "ror3-164": (create_residual_of_residual, dict(depth=164)),
    "ror3-wrn-40-2": (create_pre_residual_of_residual, dict(depth=40, width=2)),
    "ror3-wrn-58-4": (create_pre_residual_of_residual, dict(depth=58, width=4)),
    # Seed 000's WRN-28-4 with series residual adapters (convolutions frozen).
    "wrn-ram-28-4": (create_wrn_ram, dict(depth=28, width=4, adapter="series")),
}


def list_models(pattern="*"):
    """Sorted registered names matching the shell-style ``pattern`` (e.g. ``"wrn-28-*"``)."""
    return sorted(name for name in MODEL_VARIANTS if fnmatch.fnmatch(name, pattern))


def model_args(name):
    """``(builder, arguments)`` defining the registered variant ``name``."""
    if name not in MODEL_VARIANTS:
        close = difflib.get_close_matches(str(name), MODEL_VARIANTS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"create_model: unknown model name={name!r}.{hint} Known names: {', '.join(list_models())}."
        )
    builder, arguments = MODEL_VARIANTS[name]
    return builder, dict(arguments)


def create_model(model_name, /, **kwargs):
    """Build the registered variant ``model_name``; ``kwargs`` go to its builder.

    Every variant takes keras.applications' arguments (``include_top``,
    ``weights``, ``input_tensor``, ``input_shape``, ``pooling``, ``classes``,
    ``classifier_activation``, ``name``) and ``compile``.  Arguments that define
    the variant (e.g. ``depth`` for ``"wrn-28-10"``) may be repeated with the
    same value but not changed.
    """
    builder, arguments = model_args(model_name)
    for key, value in kwargs.items():
        if key in arguments and arguments[key] != value:
            raise ValueError(
                f"create_model: {key}={value!r} contradicts the variant {model_name!r}, which has "
                f"{key}={arguments[key]!r}; use another variant or call {builder.__name__} directly."
            )
    arguments.update(kwargs)
    return builder(**arguments)


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
