"""keras_wrn: Wide ResNets, pre-activation ResNets and RoR networks on Keras 3.

Builders return Functional `keras.Model`s, compiled with the papers' optimizer:

>>> import keras_wrn
>>> model = keras_wrn.create_model("wrn-16-4", classes=10)
>>> stats = keras_wrn.summary(model)

The names below are imported on first use, so ``import keras_wrn`` (and the
``keras-wrn`` command) does not load TensorFlow before it is needed.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "CoupledWeightDecaySGD": "keras_wrn.optimizers",
    "paper_optimizer": "keras_wrn.optimizers",
    "create_model": "keras_wrn.registry",
    "list_models": "keras_wrn.registry",
    "create_pre_activation_resnet": "keras_wrn.models",
    "create_pre_residual_of_residual": "keras_wrn.models",
    "create_residual_of_residual": "keras_wrn.models",
    "create_wide_residual_network": "keras_wrn.models",
    "create_wrn_ram": "keras_wrn.models",
    "resnet26": "keras_wrn.models",
    "MultiDomainNetwork": "keras_wrn.adapters",
    "wrn_ram": "keras_wrn.adapters",
    "model_stats": "keras_wrn.stats",
    "summary": "keras_wrn.stats",
    "plot_architecture": "keras_wrn.plotting",
    "list_weights": "keras_wrn.weights",
    "weights_info": "keras_wrn.weights",
    "verify_weights": "keras_wrn.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'keras_wrn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + __all__)
