"""keras_wrn: Wide ResNets, pre-activation ResNets and RoR networks on Keras 3.

Builders return Functional `keras.Model`s, compiled with the papers' optimizer:

>>> import keras_wrn
>>> model = keras_wrn.create_model("wrn-16-4", classes=10)
>>> stats = keras_wrn.summary(model)

The names below are imported on first use, so ``import keras_wrn`` (and the
``keras-wrn`` command) does not load TensorFlow before it is needed.  The
package's Keras objects (its BatchNormalization, ChannelZeroPad,
SpatialSubsample, CoupledWeightDecaySGD, the `fast` recipe's OneCycle schedule
and smoothed loss) are registered with Keras as soon as Keras is imported,
before or after ``import keras_wrn``, so ``keras.saving.load_model`` reads any
keras_wrn ``.keras`` file in a new process.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

# Modules whose import registers keras_wrn's serializable classes with Keras.
_SERIALIZABLE_MODULES = ("keras_wrn.blocks", "keras_wrn.optimizers", "keras_wrn.recipes", "keras_wrn.losses")


def _register_serializables():
    for module in _SERIALIZABLE_MODULES:
        importlib.import_module(module)


class _AfterKerasImport(importlib.abc.MetaPathFinder):
    """Registers keras_wrn's classes right after Keras itself is imported (then removes itself).

    Registering needs Keras, and importing Keras starts TensorFlow (seconds); this
    waits for the program's own ``import keras`` instead of paying for it here.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            _register_serializables()

        spec.loader.exec_module = exec_module
        return spec


if "keras" in sys.modules:
    _register_serializables()
elif not any(isinstance(finder, _AfterKerasImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _AfterKerasImport())

_EXPORTS = {
    "CoupledWeightDecaySGD": "keras_wrn.optimizers",
    "paper_optimizer": "keras_wrn.optimizers",
    "create_model": "keras_wrn.registry",
    "list_models": "keras_wrn.variants",
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
    "preprocess_input": "keras_wrn.preprocessing",
    "decode_predictions": "keras_wrn.preprocessing",
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
