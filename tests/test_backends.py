"""The models run on every Keras backend: same outputs from the same weights file, and a training step.

Each backend runs in its own process (Keras picks the backend at import).  The
TensorFlow process writes the weights and reference outputs; the JAX and PyTorch
processes load them and must reproduce the outputs, then take one SGD step with
the package's optimizer (coupled weight decay) and per-domain adapters.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = r"""
import json, os, sys
import numpy as np
import keras
import keras_wrn
from keras_wrn.adapters import MultiDomainNetwork

out = sys.argv[1]
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype("float32")
y = np.array([0, 1, 2, 1])
models = {
    "wrn": keras_wrn.create_wide_residual_network(depth=10, width=1, classes=3, input_shape=(16, 16, 3)),
    "preact": keras_wrn.create_pre_activation_resnet(depth=11, block_type="bottleneck", classes=3,
                                                      input_shape=(16, 16, 3)),
    "adapters": MultiDomainNetwork(adapter="series", input_shape=(16, 16, 3), width_factor=0.25).add_domain("d", 3),
}
result = {"backend": keras.backend.backend()}
for name, model in models.items():
    path = os.path.join(out, name + ".weights.h5")
    if keras.backend.backend() == "tensorflow":
        for layer in model.layers:  # non-trivial BN statistics, so inference exercises them
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.moving_mean.assign(np.random.default_rng(1).normal(size=layer.moving_mean.shape) * 0.1)
                layer.moving_variance.assign(np.random.default_rng(2).uniform(0.5, 1.5, layer.moving_variance.shape))
        model.save_weights(path)
    else:
        model.load_weights(path)
    result[name + "_predict"] = np.asarray(model.predict(x, verbose=0)).tolist()
    shared = [np.array(w) for w in model.non_trainable_weights if "kernel" in w.path]
    loss = float(np.asarray(model.train_on_batch(x, y)[0]))
    result[name + "_loss"] = loss
    result[name + "_frozen_kept"] = all(np.array_equal(a, np.array(w)) for a, w in
                                        zip(shared, [w for w in model.non_trainable_weights if "kernel" in w.path]))
print(json.dumps(result))
"""


def run_backend(backend, directory):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(directory)], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, f"{backend}: {out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_same_outputs_and_a_training_step_on_tensorflow_jax_and_torch(tmp_path):
    reference = run_backend("tensorflow", tmp_path)
    assert reference["backend"] == "tensorflow"
    for backend in ("jax", "torch"):
        result = run_backend(backend, tmp_path)
        assert result["backend"] == backend
        for name in ("wrn", "preact", "adapters"):
            np.testing.assert_allclose(result[f"{name}_predict"], reference[f"{name}_predict"], rtol=1e-4, atol=1e-5,
                                       err_msg=f"{name} on {backend}")
            assert np.isfinite(result[f"{name}_loss"])
            assert result[f"{name}_loss"] == pytest.approx(reference[f"{name}_loss"], rel=1e-3), (name, backend)
        assert result["adapters_frozen_kept"] and reference["adapters_frozen_kept"]
