"""The coupled (Torch-style) weight decay of the papers' SGD."""

import keras
import numpy as np
import pytest

from keras_wrn.optimizers import CoupledWeightDecaySGD, paper_optimizer


def torch_sgd_reference(w, grads, lrs, momentum, nesterov, l2):
    """Torch's SGD (dampening 0) written out with NumPy."""
    w = w.copy()
    buf = None
    for g, lr in zip(grads, lrs):
        d_p = g + l2 * w
        buf = d_p.copy() if buf is None else momentum * buf + d_p
        step = d_p + momentum * buf if nesterov else buf
        w = w - lr * step
    return w


@pytest.mark.parametrize("nesterov", [True, False])
def test_matches_torch_sgd_across_a_learning_rate_drop(nesterov):
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5, 3)).astype("float64")
    grads = [rng.normal(size=(5, 3)) for _ in range(6)]
    # Powers of two: exact in the optimizer's float32 learning-rate variable.
    lrs = [0.125, 0.125, 0.125, 0.015625, 0.015625, 0.001953125]

    def run(optimizer):
        variable = keras.Variable(w0, dtype="float64")
        for g, lr in zip(grads, lrs):
            optimizer.learning_rate = lr
            optimizer.apply_gradients([(keras.ops.convert_to_tensor(g, "float64"), variable)])
        return keras.ops.convert_to_numpy(variable)

    expected = torch_sgd_reference(w0, grads, lrs, 0.9, nesterov, 5e-4)
    ours = run(CoupledWeightDecaySGD(learning_rate=0.125, momentum=0.9, nesterov=nesterov, l2=5e-4))
    np.testing.assert_allclose(ours, expected, rtol=1e-12)
    # Keras' own SGD with (decoupled) weight_decay is a different algorithm.
    keras_sgd = run(keras.optimizers.SGD(0.125, momentum=0.9, nesterov=nesterov, weight_decay=5e-4))
    assert np.abs(keras_sgd - expected).max() > 1e-4


def test_decay_reaches_every_trainable_parameter_kind():
    """BN scale/offset and dense bias decay too; BN moving statistics do not."""
    layer_in = keras.Input((4,))
    bn = keras.layers.BatchNormalization(beta_initializer="ones")
    dense = keras.layers.Dense(2, bias_initializer="ones")
    model = keras.Model(layer_in, dense(bn(layer_in)))
    optimizer = CoupledWeightDecaySGD(learning_rate=1.0, momentum=0.0, l2=0.1)
    before = {v.path: keras.ops.convert_to_numpy(v).copy() for v in model.trainable_variables}
    zeros = [keras.ops.zeros_like(v) for v in model.trainable_variables]
    optimizer.apply_gradients(zip(zeros, model.trainable_variables))
    for variable in model.trainable_variables:
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), 0.9 * before[variable.path],
                                   rtol=1e-6, err_msg=variable.path)
    assert len(before) == 4  # gamma, beta, kernel, bias
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(bn.moving_variance), np.ones(4))


def test_config_round_trip():
    optimizer = paper_optimizer("wrn", 5e-4)
    clone = CoupledWeightDecaySGD.from_config(optimizer.get_config())
    assert (clone.l2, clone.nesterov, clone.momentum) == (5e-4, True, 0.9)


def test_refuses_decoupled_weight_decay_and_bad_l2():
    with pytest.raises(ValueError, match="weight_decay=0.01.*pass the coefficient as `l2`"):
        CoupledWeightDecaySGD(weight_decay=0.01)
    with pytest.raises(ValueError, match="l2=-1"):
        CoupledWeightDecaySGD(l2=-1)
    with pytest.raises(ValueError, match="family='vgg'"):
        paper_optimizer("vgg", 1e-4)


def test_weight_decay_per_layer_kind():
    import keras

    from keras_wrn.optimizers import ADAPTER_WEIGHT_DECAY

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="group1_block1_adapter1")(inputs)
    outputs = keras.layers.Dense(2, name="predictions")(hidden)
    model = keras.Model(inputs, outputs)
    optimizer = CoupledWeightDecaySGD(learning_rate=1.0, momentum=0.0, l2=ADAPTER_WEIGHT_DECAY)
    assert [optimizer.l2_for(v) for v in model.trainable_variables] == [1e-4, 1e-4, 5e-4, 5e-4]
    before = [np.array(v.numpy()) for v in model.trainable_variables]
    optimizer.apply([np.zeros(v.shape, "float32") for v in model.trainable_variables], model.trainable_variables)
    for old, variable, l2 in zip(before, model.trainable_variables, [1e-4, 1e-4, 5e-4, 5e-4]):
        np.testing.assert_allclose(variable.numpy(), old * (1 - l2), rtol=1e-6)
    clone = CoupledWeightDecaySGD.from_config(optimizer.get_config())
    assert clone.l2 == {"*adapter*": 1e-4, "*": 5e-4}
    with pytest.raises(ValueError, match='end with the catch-all "\\*"'):
        CoupledWeightDecaySGD(l2={"*adapter*": 1e-4})
    with pytest.raises(ValueError, match="floats >= 0"):
        CoupledWeightDecaySGD(l2={"*": -1.0})


def test_moving_average_is_swapped_in_and_the_trained_weights_come_back_exactly():
    rng = np.random.default_rng(1)
    variable = keras.Variable(rng.normal(size=(4, 3)).astype("float32"))
    optimizer = CoupledWeightDecaySGD(0.1, use_ema=True, ema_momentum=0.5, average_at_fit_end=False)
    values, average = [], None
    for step in range(4):
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(rng.normal(size=(4, 3)), "float32"), variable)])
        values.append(keras.ops.convert_to_numpy(variable).copy())
        average = values[0] if average is None else 0.5 * average + 0.5 * values[-1]
    trained = keras.ops.convert_to_numpy(variable).copy()
    optimizer.finalize_variable_values([variable])  # what model.fit calls at its end: a no-op here
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), trained)
    with optimizer.averaged_weights([variable]):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(variable), average, rtol=1e-6)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), trained)
    # Keras' behaviour by default: fit's end leaves the average in the weights.
    keras_like = CoupledWeightDecaySGD(0.1, use_ema=True, ema_momentum=0.5)
    other = keras.Variable(trained)
    keras_like.apply_gradients([(keras.ops.ones((4, 3)), other)])
    keras_like.apply_gradients([(keras.ops.ones((4, 3)), other)])
    before = keras.ops.convert_to_numpy(other).copy()
    keras_like.finalize_variable_values([other])
    assert not np.array_equal(keras.ops.convert_to_numpy(other), before)
    assert CoupledWeightDecaySGD.from_config(optimizer.get_config()).average_at_fit_end is False


def test_averaged_weights_without_averaging_leaves_the_weights():
    variable = keras.Variable(np.ones((2,), "float32"))
    optimizer = CoupledWeightDecaySGD(0.1)
    optimizer.apply_gradients([(keras.ops.ones((2,)), variable)])
    before = keras.ops.convert_to_numpy(variable).copy()
    with optimizer.averaged_weights([variable]):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(variable), before)


@pytest.mark.parametrize("nesterov", [True, False])
def test_tensorflow_momentum_kernel_is_taken_and_equals_the_generic_update(monkeypatch, nesterov):
    """The one-kernel update (TensorFlow's ResourceApplyMomentum) against the elementwise formula, float32."""
    import tensorflow as tf

    rng = np.random.default_rng(3)
    w0 = rng.normal(size=(3, 3, 8, 16)).astype("float32")
    grads = [rng.normal(size=w0.shape).astype("float32") for _ in range(5)]
    lrs = [0.1, 0.1, 0.02, 0.02, 0.004]

    def run(kernel):
        taken = []
        original = CoupledWeightDecaySGD._apply_momentum_kernel

        def spy(self, *args):
            taken.append(kernel and original(self, *args))
            return taken[-1]

        monkeypatch.setattr(CoupledWeightDecaySGD, "_apply_momentum_kernel", spy)
        optimizer = CoupledWeightDecaySGD(learning_rate=0.1, nesterov=nesterov, l2=5e-4)
        variable = keras.Variable(w0)
        for g, lr in zip(grads, lrs):
            optimizer.learning_rate = lr
            optimizer.apply_gradients([(tf.constant(g), variable)])
        return keras.ops.convert_to_numpy(variable), taken

    fused, taken = run(True)
    assert taken == [True] * 5
    generic, taken = run(False)
    assert taken == [False] * 5
    np.testing.assert_allclose(fused, generic, rtol=1e-5, atol=1e-7)
    assert np.abs(fused - w0).max() > 0.1  # the steps moved the weights


def test_momentum_kernel_leaves_distribution_strategies_to_the_generic_update():
    import tensorflow as tf

    optimizer = CoupledWeightDecaySGD(learning_rate=0.1)
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        variable = tf.Variable(np.ones((2, 2), "float32"))
        buf = tf.Variable(np.zeros((2, 2), "float32"))
        assert not optimizer._apply_momentum_kernel(tf.ones((2, 2)), variable, tf.constant(0.1), tf.constant(0.9), buf)
    assert optimizer._apply_momentum_kernel(tf.ones((2, 2)), tf.Variable(np.ones((2, 2), "float32")), tf.constant(0.1),
                                            tf.constant(0.9), tf.Variable(np.zeros((2, 2), "float32")))
