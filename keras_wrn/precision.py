"""Numeric precision of a model: float32, or mixed bfloat16/float16 compute with float32 variables.

A builder's ``precision`` names one of `PRECISIONS`; the layers are created
under the matching Keras dtype policy (`POLICIES`), so it is saved with the
model (``.keras`` keeps it) and every framework path that honours Keras'
policies (``fit``, ``predict``, distribution) uses it:

- ``"float32"``: everything in float32.
- ``"bfloat16"``: Keras' ``mixed_bfloat16``: convolutions and activations in
  bfloat16 (the AMX / AVX512-BF16 units of recent Xeons, tensor cores of
  Ampere and later GPUs); variables, optimizer state and BatchNorm statistics
  stay float32.  The classifier (``predictions``) and the input normalisation
  (``preprocessing``) are built as float32 layers (`keras_wrn.models.base`):
  logits, softmax and the loss in float32, as Keras' mixed-precision guide
  advises, and raw 0-255 pixels minus a mean would lose two to three
  significant digits in bfloat16.
- ``"float16"``: Keras' ``mixed_float16``, the same split; a compiled model
  gets Keras' dynamic loss scaling (`keras.optimizers.LossScaleOptimizer`),
  which float16's narrow range needs.
- ``"auto"``: bfloat16 where the hardware computes it natively
  (`native_bfloat16`), float32 elsewhere.

Because variables are float32 at every precision, weight files are the same
at every precision: a release or a bfloat16-trained checkpoint loads into a
float32 model and the reverse.
"""

import contextlib

from keras_wrn.provenance import cpu_model_and_flags

PRECISIONS = ("float32", "bfloat16", "float16")
CHOICES = PRECISIONS + ("auto",)
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}
# CPU flags (Linux /proc/cpuinfo) of units that compute bfloat16 products natively.
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
# GPUs with bfloat16 tensor cores: NVIDIA compute capability 8.0 (Ampere) and later.
BFLOAT16_GPU_CAPABILITY = (8, 0)


def _gpu_capabilities():
    """Compute capabilities of the visible GPUs (TensorFlow backend; empty elsewhere or without GPUs)."""
    import keras  # deferred (here and below): the CLI reads CHOICES without starting Keras

    if keras.backend.backend() != "tensorflow":
        return []
    import tensorflow as tf  # deferred: only the TensorFlow backend has it

    details = [tf.config.experimental.get_device_details(device) for device in tf.config.list_physical_devices("GPU")]
    return [tuple(detail.get("compute_capability", (0, 0))) for detail in details]


def native_bfloat16():
    """``(True/False, reason)``: whether this machine computes bfloat16 natively, and why."""
    capabilities = _gpu_capabilities()
    if capabilities:
        if min(capabilities) >= BFLOAT16_GPU_CAPABILITY:
            return True, f"GPU compute capability {'.'.join(map(str, min(capabilities)))}"
        return False, f"GPU compute capability {'.'.join(map(str, min(capabilities)))} < 8.0"
    model, flags = cpu_model_and_flags()
    found = [flag for flag in BFLOAT16_CPU_FLAGS if flag in flags]
    if found:
        return True, f"{model} has {'+'.join(found)}"
    return False, f"{model} has neither {' nor '.join(BFLOAT16_CPU_FLAGS)}"


def resolve_precision(precision, argument="precision"):
    """One of `PRECISIONS` for ``precision`` (a name from `CHOICES`, or None).

    None follows Keras' global dtype policy (float32 unless the user set
    ``keras.config.set_dtype_policy("mixed_bfloat16")`` or the like); "auto"
    is bfloat16 where `native_bfloat16`, else float32.

    Raises:
        ValueError: naming ``argument`` and the allowed values.
    """
    import keras  # deferred

    if precision is None:
        global_policy = keras.config.dtype_policy().name
        return next((name for name, policy in POLICIES.items() if policy == global_policy), "float32")
    if precision not in CHOICES:
        raise ValueError(f"{argument}={precision!r} is not allowed; expected one of {list(CHOICES)}.")
    if precision == "auto":
        return "bfloat16" if native_bfloat16()[0] else "float32"
    return precision


def precision_of(model):
    """The precision ``model`` was built with, read from its layers' dtype policies."""
    policies = {layer.dtype_policy.name for layer in model.layers}
    return next((name for name in ("bfloat16", "float16") if POLICIES[name] in policies), "float32")


@contextlib.contextmanager
def building_with(precision):
    """Create layers under ``precision``'s dtype policy; Keras' global policy is restored afterwards.

    Keras layers take their policy from the global one when they are created,
    so this is the one place where the global setting is touched.
    """
    import keras  # deferred

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(POLICIES[precision])
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
