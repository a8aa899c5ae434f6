"""keras_wrn.blocks.BatchNormalization: Keras' BatchNormalization with TensorFlow's fused training kernel."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_wrn.blocks import BatchNormalization as FusedBN


def pair(shape=(8, 6, 5, 4), seed=0):
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.normal(2.0, 3.0, size=shape).astype("float32"))
    fused = FusedBN(momentum=0.9, epsilon=1e-5)
    plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    fused.build(x.shape)
    plain.build(x.shape)
    gamma, beta = rng.uniform(0.5, 1.5, shape[-1]), rng.normal(size=shape[-1])
    for layer in (fused, plain):
        layer.set_weights([gamma, beta, rng.normal(size=shape[-1]) * 0 + 0.5, np.full(shape[-1], 2.0)])
    return x, fused, plain


def test_training_step_matches_keras_outputs_gradients_and_moving_statistics():
    x, fused, plain = pair()
    assert fused._fusable(x, True, None)  # the fused kernel is what this test compares
    weights = tf.constant(np.random.default_rng(1).normal(size=x.shape).astype("float32"))
    results = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * weights)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y.numpy(), [g.numpy() for g in grads], [w.numpy() for w in layer.weights]))
    (y1, g1, w1), (y2, g2, w2) = results
    np.testing.assert_allclose(y1, y2, rtol=1e-5, atol=1e-5)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    for a, b in zip(w1, w2):  # gamma, beta, moving mean, moving (biased) variance
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(w1[3], 2.0)  # the moving variance did move


def test_inference_is_fused_too_and_matches_keras():
    x, fused, plain = pair()
    assert fused._fusable(x, False, None)
    np.testing.assert_allclose(fused(x, training=False).numpy(), plain(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    fused.trainable = False  # frozen BNs run in inference mode, as Keras' own do
    np.testing.assert_allclose(fused(x, training=True).numpy(), plain(x, training=False).numpy(), rtol=1e-5, atol=1e-5)


def test_fallbacks_are_keras_own_path():
    x, fused, plain = pair()
    fused.synchronized = True  # multi-replica batch statistics: Keras' path; moving statistics need no replicas
    assert not fused._fusable(x, True, None) and fused._fusable(x, False, None)
    fused.synchronized = False
    assert not fused._fusable(tf.zeros((2, 3)), True, None)
    assert not fused._fusable(tf.zeros((2, 3, 3, 4), dtype="float64"), True, None)


@pytest.mark.parametrize("training", [True, False])
def test_bfloat16_activations_go_into_the_kernel_with_float32_statistics(training):
    x, _, _ = pair(shape=(16, 6, 5, 4))
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        fused = FusedBN(momentum=0.9, epsilon=1e-5)
        plain = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    finally:
        keras.config.set_dtype_policy("float32")
    rng = np.random.default_rng(3)
    weights = [rng.uniform(0.5, 1.5, 4), rng.normal(size=4), np.full(4, 0.5), np.full(4, 2.0)]
    for layer in (fused, plain):
        layer.build(x.shape)
        layer.set_weights(weights)
    x16 = tf.cast(x, "bfloat16")
    assert fused._fusable(x16, training, None)
    y1, y2 = fused(x16, training=training), plain(x16, training=training)
    assert y1.dtype == y2.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(y1, "float32").numpy(), tf.cast(y2, "float32").numpy(), rtol=0.02, atol=0.02)
    for a, b in zip(fused.weights, plain.weights):  # statistics stay float32 and move the same way
        assert a.dtype == "float32"
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-2, atol=1e-2)


def test_environment_switch_turns_fusion_off(monkeypatch):
    x, fused, _ = pair()
    assert fused._fusable(x, True, None)
    monkeypatch.setenv("KERAS_WRN_FUSED_BATCH_NORM", "0")
    assert not fused._fusable(x, True, None)


def test_a_model_training_step_equals_the_unfused_one(monkeypatch):
    """One SGD step of WRN-10-1 with the fused kernel and with Keras' own BN: same loss and weights."""
    import keras_wrn

    x = np.random.default_rng(0).normal(size=(16, 32, 32, 3)).astype("float32")
    y = np.arange(16) % 10
    outcomes = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(FusedBN, "_fusable", lambda self, *args: False)
        else:
            assert FusedBN(epsilon=1e-5)._fusable(tf.zeros((1, 2, 2, 3)), True, None)
        keras.utils.set_random_seed(7)
        model = keras_wrn.create_wide_residual_network(depth=10, width=1)
        loss = model.train_on_batch(x, y)[0]
        outcomes.append((loss, model.get_weights()))
    (loss1, w1), (loss2, w2) = outcomes
    assert loss1 == pytest.approx(loss2, rel=1e-5)
    for a, b in zip(w1, w2):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_layers_are_fused_and_serialise():
    import keras_wrn

    model = keras_wrn.create_model("wrn-16-1", compile=False)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(type(layer) is FusedBN for layer in bns)
    clone = keras.Model.from_config(model.get_config())
    assert type(clone.get_layer("group1_block1_bn1")) is FusedBN


def _random_statistics(model, seed=0):
    """Non-trivial BN weights and moving statistics, so that a wrong fold cannot pass as identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, FusedBN):
            channels = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.3, channels),
                               rng.normal(0, 0.5, channels), rng.uniform(0.5, 2.0, channels)])


def _graph_ops(model, x):
    """Op types of the traced inference graph (before Grappler), as ``predict`` traces it."""
    function = tf.function(lambda inputs: model(inputs, training=False))
    return [op.type for op in function.get_concrete_function(tf.TensorSpec(x.shape, tf.float32)).graph.get_operations()]


@pytest.mark.parametrize("key, precision, folded_bns", [
    ("resnet26", "bfloat16", 25),  # every conv's BN (stem + 24); the final BN reads an Add
    ("resnet26", "float32", 12),  # float32: only the BNs before a residual Add ("always")
    ("wrn-16-1", "bfloat16", 6),  # the BN between a block's two convs
    ("wrn-16-1", "float32", 0),  # Grappler folds BN + ReLU itself in float32
])
def test_inference_folds_the_bn_into_its_conv_and_computes_the_same(key, precision, folded_bns):
    import keras_wrn

    keras.utils.set_random_seed(3)
    x = np.random.default_rng(1).normal(0, 1, (4, 32, 32, 3)).astype("float32")
    model = keras_wrn.create_model(key, input_shape=(32, 32, 3), precision=precision, compile=False)
    _random_statistics(model)
    bns = [layer for layer in model.layers if isinstance(layer, FusedBN)]
    ops = _graph_ops(model, x)
    assert ops.count("FusedBatchNormV3") == len(bns) - folded_bns
    folded = model.predict_on_batch(x)
    for layer in bns:
        layer.fold_into_conv = "never"
    assert _graph_ops(model, x).count("FusedBatchNormV3") == len(bns)
    plain = keras.Model(model.inputs, model.outputs).predict_on_batch(x)  # a new predict function: traced again
    scale = np.abs(plain).max()
    assert scale > 0.1  # the random statistics make real logits
    tolerance = 1e-4 if precision == "float32" else 3e-2  # bfloat16: the fold moves where the rounding happens
    np.testing.assert_allclose(folded, plain, atol=tolerance * scale, rtol=0)
    assert (np.argmax(folded, 1) == np.argmax(plain, 1)).mean() >= 0.75


def test_fold_choices_follow_the_architecture():
    import keras_wrn
    from keras_wrn.adapters import MultiDomainNetwork

    model = keras_wrn.create_model("resnet26", input_shape=(32, 32, 3), compile=False)
    assert model.get_layer("stage1_block1_conv1_bn").fold_into_conv == "below-float32"
    assert model.get_layer("stage1_block1_conv2_bn").fold_into_conv == "always"  # the residual Add follows
    series = MultiDomainNetwork(adapter="series", input_shape=(32, 32, 3)).add_domain("d", 10)
    assert series.get_layer("stage1_block1_conv1_adapter_bn").fold_into_conv == "never"  # its conv feeds an Add too
    x = np.zeros((2, 32, 32, 3), "float32")
    assert _graph_ops(series, x).count("Conv2D") == sum(isinstance(l, keras.layers.Conv2D) for l in series.layers)


def test_fold_is_inference_only_and_eager_calls_normalise(monkeypatch):
    x, fused, plain = pair()
    fused.fold_into_conv = "always"
    # eagerly there is no graph to fold into: the normal inference path
    np.testing.assert_allclose(fused(x, training=False).numpy(), plain(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    calls = []
    monkeypatch.setattr(FusedBN, "_folded_convolution", lambda self, inputs: calls.append(1))
    fused(x, training=False)
    assert calls == [1]  # inference asks for the fold (the patched one declines)
    fused(x, training=True)
    assert calls == [1]  # training never does


def test_fold_needs_a_known_value_and_round_trips():
    with pytest.raises(ValueError, match="fold_into_conv='sometimes'"):
        FusedBN(fold_into_conv="sometimes")
    layer = FusedBN(fold_into_conv="always")
    assert FusedBN.from_config(layer.get_config()).fold_into_conv == "always"
    assert FusedBN().fold_into_conv == "never"  # the class alone never folds: a user's conv may have other readers


def test_a_saved_model_folds_the_same_way_in_a_fresh_process(tmp_path):
    """`.keras` keeps each BN's fold setting; a new process's predict (folded) gives this one's outputs."""
    import os
    import subprocess
    import sys

    import keras_wrn

    keras.utils.set_random_seed(5)
    model = keras_wrn.create_model("resnet26", input_shape=(16, 16, 3), width_factor=0.25, precision="bfloat16")
    _random_statistics(model, seed=2)
    x = np.random.default_rng(4).normal(0, 1, (8, 16, 16, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict_on_batch(x))
    code = """
import sys, numpy as np, keras, keras_wrn
from keras_wrn.blocks import BatchNormalization
folder = sys.argv[1]
model = keras.saving.load_model(folder + "/m.keras")
folds = {layer.name: layer.fold_into_conv for layer in model.layers if isinstance(layer, BatchNormalization)}
assert folds["stage1_block1_conv1_bn"] == "below-float32" and folds["stage1_block1_conv2_bn"] == "always", folds
y = model.predict_on_batch(np.load(folder + "/x.npy"))
assert np.array_equal(y, np.load(folder + "/y.npy")), np.abs(y - np.load(folder + "/y.npy")).max()
print("SAME")
"""
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SAME" in out.stdout
