"""Distributed training: `tf.distribute` strategies, logical CPU devices, and the one Keras workaround.

With more than one replica, BatchNorm statistics are synchronised across
replicas (`synchronize_batch_norm`), so a step computes the same function as a
single-device step on the same global batch.  Under `MultiWorkerMirroredStrategy`
only the chief worker writes the run directory (`is_chief`).

Keras 3 cannot ``fit`` under `MultiWorkerMirroredStrategy` as released
(keras-team/keras#20585); `multi_worker_fit_workaround` patches the two
internals involved for the duration of a ``fit`` call, and only there.
"""

import contextlib
import inspect
import os
import re
import warnings

import keras
import tensorflow as tf
from keras import tree

__all__ = [
    "DISTRIBUTE",
    "KERAS_VERSIONS_TESTED",
    "is_chief",
    "make_strategy",
    "multi_worker_fit_workaround",
    "synchronize_batch_norm",
    "use_cpu_devices",
]

DISTRIBUTE = ("none", "mirrored", "multi-worker")

KERAS_ISSUE = "keras-team/keras#20585"
# Keras releases (major, minor) that `multi_worker_fit_workaround` was tested with: the two-worker
# test (tests/test_distribute.py) matched the single-device losses.  Add a release here after that
# test passes with it.
KERAS_VERSIONS_TESTED = ((3, 15),)


def make_strategy(distribute=None):
    """The `tf.distribute` strategy for ``distribute`` (None for the default one).

    - ``None`` / ``"none"``: the default strategy (one device).
    - ``"mirrored"``: `MirroredStrategy` over the local GPUs, else over the
      logical CPU devices (see `use_cpu_devices`).
    - ``"multi-worker"``: `MultiWorkerMirroredStrategy`; the cluster comes from
      the ``TF_CONFIG`` environment variable.
    """
    if distribute in (None, "none"):
        return None
    if distribute == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if distribute == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "--distribute multi-worker: the TF_CONFIG environment variable is not set; expected "
                '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--distribute {distribute!r} is not allowed; expected one of {list(DISTRIBUTE)}.")


def use_cpu_devices(count):
    """Split the CPU into ``count`` logical devices (call before TensorFlow starts its runtime)."""
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"--cpu-devices {count!r}: expected an integer >= 1.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise ValueError(f"--cpu-devices: TensorFlow has already started ({error}).") from None


def is_chief(strategy):
    """Whether this process writes the run: always without a strategy, else the chief worker only."""
    return strategy is None or strategy.extended.should_checkpoint


def synchronize_batch_norm(model, strategy):
    """With more than one replica, compute BatchNorm batch statistics over the global batch."""
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        for layer in model.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.synchronized = True


@contextlib.contextmanager
def multi_worker_fit_workaround(model, strategy):
    """Let ``model.fit`` run under `MultiWorkerMirroredStrategy` (keras-team/keras#20585).

    Keras 3's TensorFlow trainer breaks in two places under that strategy:

    1. before training, ``Trainer._maybe_symbolic_build`` builds the model from
       one batch and first reduces the per-replica batch with an eager
       cross-worker "MEAN", which TensorFlow refuses ("Attempt to convert a
       value (PerReplica...)"); only the batch's shapes matter, so the local
       replica's part is used instead;
    2. each step's metric results (scalars) go through the module function
       ``keras.src.backend.tensorflow.trainer.reduce_per_replica``, which calls
       ``strategy.reduce("MEAN", v, axis=0)``, invalid for a scalar; scalars are
       averaged over the replicas with ``axis=None`` instead.

    Inside the ``with`` block ``reduce_per_replica`` is replaced for the whole
    process (other threads' ``fit`` calls would see it too; this package runs
    one) and ``model._maybe_symbolic_build`` is overridden on this model only;
    both are restored on exit, also when ``fit`` raises.  The train and test
    functions Keras traces during the block keep the patched reduction, since
    tracing resolves it then; each ``fit`` call should still enter the block, as
    a retrace (a new batch shape) resolves it again.

    For any other strategy (or None) the block changes nothing.

    Guard: the patched internals are private.  If they are missing or have
    another signature, a ``RuntimeError`` names the Keras version and the issue
    instead of patching blindly; a Keras release outside `KERAS_VERSIONS_TESTED`
    that still has them gets a ``RuntimeWarning`` (run the two-worker test in
    tests/test_distribute.py, which compares with one device, then add it).
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        yield
        return
    trainer_module = _checked_internals(model)
    original_reduce = trainer_module.reduce_per_replica
    own_build = vars(model).get("_maybe_symbolic_build")  # None: the class's method is used

    def reduce_per_replica(values, strategy_, reduction):
        if reduction not in ("auto", "mean") or not isinstance(strategy_, tf.distribute.MultiWorkerMirroredStrategy):
            return original_reduce(values, strategy_, reduction)

        def reduce(value):
            local = strategy_.experimental_local_results(value)[0] if isinstance(
                value, tf.distribute.DistributedValues) else value
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy_.reduce("MEAN", value, axis=None)
            return original_reduce(value, strategy_, reduction)

        return tree.map_structure(reduce, values)

    def local_part(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local_part, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    # object.__setattr__: a plain instance attribute, outside Keras' layer/variable tracking.
    trainer_module.reduce_per_replica = reduce_per_replica
    object.__setattr__(model, "_maybe_symbolic_build", maybe_symbolic_build)
    try:
        yield
    finally:
        trainer_module.reduce_per_replica = original_reduce
        if own_build is None:
            object.__delattr__(model, "_maybe_symbolic_build")
        else:
            object.__setattr__(model, "_maybe_symbolic_build", own_build)


def _tested_releases():
    return ", ".join(f"{major}.{minor}" for major, minor in KERAS_VERSIONS_TESTED)


def _keras_release():
    match = re.match(r"(\d+)\.(\d+)", keras.__version__)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _checked_internals(model):
    """The Keras trainer module to patch, after checking it has what the workaround replaces."""
    try:  # here, not at the top: a Keras without this private module gets the error below
        from keras.src.backend.tensorflow import trainer as trainer_module
    except ImportError as error:
        trainer_module, problems = None, [f"keras.src.backend.tensorflow.trainer cannot be imported ({error})"]
    else:
        problems = []
    if trainer_module is not None:
        problems += _signature_problems(getattr(trainer_module, "reduce_per_replica", None),
                                        "keras.src.backend.tensorflow.trainer.reduce_per_replica",
                                        ["values", "strategy", "reduction"])
    problems += _signature_problems(getattr(type(model), "_maybe_symbolic_build", None),
                                    f"{type(model).__name__}._maybe_symbolic_build",
                                    ["self", "iterator", "data_batch"])
    if not callable(getattr(model, "_symbolic_build", None)):
        problems.append(f"{type(model).__name__}._symbolic_build is missing")
    if problems:
        raise RuntimeError(
            f"--distribute multi-worker: the workaround for {KERAS_ISSUE} (keras_wrn.training.distribute) "
            f"patches Keras internals that Keras {keras.__version__} does not have as expected: "
            f"{'; '.join(problems)}. It was tested with Keras "
            f"{_tested_releases()}; use one of those, "
            f"or a Keras release that fixes {KERAS_ISSUE} with the workaround updated."
        )
    if _keras_release() not in KERAS_VERSIONS_TESTED:
        warnings.warn(
            f"--distribute multi-worker: the workaround for {KERAS_ISSUE} was tested with Keras "
            f"{_tested_releases()}, not {keras.__version__}; "
            f"the internals it patches are present, but check the results (tests/test_distribute.py "
            f"compares two workers with one device).",
            RuntimeWarning,
            stacklevel=4,
        )
    return trainer_module


def _signature_problems(function, name, parameters):
    if not callable(function):
        return [f"{name} is missing"]
    try:
        found = list(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return [f"{name} has no inspectable signature"]
    if found != parameters:
        return [f"{name} takes ({', '.join(found)}), not ({', '.join(parameters)})"]
    return []
