"""Shapes, layer names, save/load round trips, weights loading and training."""

import keras
import numpy as np
import pytest

import keras_wrn
from conftest import TINY, build_tiny

FAMILIES = sorted(TINY)


@pytest.mark.parametrize("kind", FAMILIES)
@pytest.mark.parametrize(
    "include_top,pooling,expected",
    [
        (True, None, (4, 7)),
        (True, "avg", (4, 7)),
        (True, "max", (4, 7)),
        (False, None, "map"),
        (False, "avg", "vector"),
        (False, "max", "vector"),
    ],
)
def test_output_shapes(kind, include_top, pooling, expected, images):
    model = build_tiny(kind, classes=7, include_top=include_top, pooling=pooling)
    output = model.predict(images, verbose=0)
    channels = model.get_layer(index=-1).output.shape[-1]
    if expected == "map":
        assert output.shape == (4, 8, 8, channels)
    elif expected == "vector":
        assert output.shape == (4, channels)
    else:
        assert output.shape == expected
        np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)


def test_pooling_layer_is_the_one_asked_for():
    assert build_tiny("wrn", pooling="max").get_layer("max_pool")
    assert build_tiny("wrn").get_layer("avg_pool")
    assert build_tiny("wrn", classifier_activation=None).get_layer("predictions").activation.__name__ == "linear"


def test_final_width_per_family():
    assert build_tiny("wrn", include_top=False).output.shape[-1] == 64
    assert build_tiny("pre_ror", include_top=False).output.shape[-1] == 128
    assert build_tiny("preact_bottleneck", include_top=False).output.shape[-1] == 256


def test_variable_input_size_backbone():
    model = keras_wrn.create_wide_residual_network(
        input_shape=(None, None, 3), depth=10, width=1, include_top=False, pooling="avg"
    )
    assert model.predict(np.zeros((2, 48, 40, 3), "float32"), verbose=0).shape == (2, 64)


def test_input_tensor_is_used():
    tensor = keras.Input((32, 32, 3))
    model = keras_wrn.create_wide_residual_network(input_tensor=tensor, depth=10, width=1)
    assert model.inputs[0] is tensor


def test_layer_names_are_readable_and_stable():
    first = keras_wrn.create_model("wrn-16-2", compile=False)
    second = keras_wrn.create_model("wrn-16-2", compile=False)
    names = [layer.name for layer in first.layers]
    assert names == [layer.name for layer in second.layers]
    for expected in [
        "stem_conv",
        "group1_block1_bn1",
        "group1_block1_shortcut_conv",
        "group2_block1_conv1_pad",
        "group2_block2_conv2",
        "group3_block2_add",
        "final_bn",
        "final_relu",
        "avg_pool",
        "predictions",
    ]:
        assert expected in names
    assert first.name == "wrn_16_2"
    # Identity shortcuts where width and stride are kept: no projection in block 2.
    assert "group2_block2_shortcut_conv" not in names


def test_wrn_structure_follows_the_paper():
    model = keras_wrn.create_model("wrn-16-2", compile=False)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(not conv.use_bias for conv in convs)
    assert model.get_layer("group2_block1_conv1").strides == (2, 2)
    assert model.get_layer("group2_block2_conv1").strides == (1, 1)
    # The projection reads the pre-activated input (after bn1/relu1).
    shortcut = model.get_layer("group2_block1_shortcut_conv")
    assert shortcut.input is model.get_layer("group2_block1_relu1").output
    dropped = keras_wrn.create_wide_residual_network(depth=10, width=1, dropout=0.3, compile=False)
    dropout = dropped.get_layer("group1_block1_dropout")
    assert dropout.rate == 0.3
    assert dropout.input is dropped.get_layer("group1_block1_relu2").output


def test_strided_conv_pads_like_torch():
    """Stride-2 3x3 convs see rows 2i-1..2i+1 (Torch, padding 1), not 2i..2i+2."""
    model = keras_wrn.create_model("wrn-16-1", compile=False)
    conv = model.get_layer("group2_block1_conv1")
    assert conv.padding == "valid"
    assert model.get_layer("group2_block1_conv1_pad").padding == ((1, 1), (1, 1))
    assert conv.output.shape[1:3] == (16, 16)


def test_ror_shortcuts():
    model = keras_wrn.create_model("ror3-wrn-40-2", compile=False)
    root = model.get_layer("root_shortcut_conv")
    assert root.strides == (4, 4) and root.filters == 128
    assert root.input is model.get_layer("stem_conv").output
    for group, (filters, stride) in enumerate([(32, 1), (64, 2), (128, 2)], start=1):
        level2 = model.get_layer(f"group{group}_shortcut_conv")
        assert (level2.filters, level2.strides) == (filters, (stride, stride))
    # Seed deviation not reproduced: no max pooling.
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    post = keras_wrn.create_model("ror3-110", compile=False)
    assert post.get_layer("group3_block17_add").output.shape[-1] == 64
    assert isinstance(post.layers[-3], keras.layers.ReLU)  # group3_out, then pool and dense


@pytest.mark.parametrize("kind", FAMILIES)
def test_keras_save_and_load_round_trip(kind, tmp_path, images):
    model = build_tiny(kind, classes=5, dropout=0.2)
    model.fit(images, np.arange(4) % 5, epochs=1, verbose=0)  # moving stats and optimizer state
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.predict(images, verbose=0), loaded.predict(images, verbose=0))
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert isinstance(loaded.optimizer, keras_wrn.CoupledWeightDecaySGD)
    assert loaded.optimizer.l2 == model.optimizer.l2


def test_weights_path_loads(tmp_path, images):
    source = build_tiny("wrn", classes=3)
    path = tmp_path / "wrn.weights.h5"
    source.save_weights(path)
    keras.utils.set_random_seed(99)
    restored = build_tiny("wrn", classes=3, weights=str(path))
    np.testing.assert_array_equal(source.predict(images, verbose=0), restored.predict(images, verbose=0))


@pytest.mark.parametrize("kind", FAMILIES)
def test_compiled_with_the_paper_optimizer(kind):
    model = build_tiny(kind)
    optimizer = model.optimizer
    assert isinstance(optimizer, keras_wrn.CoupledWeightDecaySGD)
    assert float(optimizer.learning_rate) == pytest.approx(0.1)
    assert optimizer.momentum == 0.9
    expected = {"wrn": (True, 5e-4), "pre_ror": (True, 5e-4), "ror": (False, 1e-4)}
    nesterov, decay = expected.get(kind, (False, 1e-4))
    assert (optimizer.nesterov, optimizer.l2) == (nesterov, decay)
    assert isinstance(model.loss, keras.losses.SparseCategoricalCrossentropy)
    assert not build_tiny(kind, compile=False).compiled
    assert build_tiny(kind, weight_decay=0.0).optimizer.l2 == 0.0


def test_logits_model_uses_from_logits_loss():
    model = build_tiny("wrn", classifier_activation=None)
    assert model.loss.get_config()["from_logits"] is True


def test_a_few_training_steps_lower_the_loss():
    rng = np.random.default_rng(0)
    labels = np.arange(64) % 4
    colours = rng.normal(size=(4, 1, 1, 3)).astype("float32")
    x = colours[labels] + 0.5 * rng.normal(size=(64, 32, 32, 3)).astype("float32")
    model = build_tiny("wrn", classes=4)
    history = model.fit(x, labels, batch_size=32, epochs=8, shuffle=False, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses


def test_gradient_reaches_every_trainable_variable(images):
    import tensorflow as tf

    for kind in FAMILIES:
        model = build_tiny(kind, classes=3, compile=False)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(images, training=True) * tf.constant([1.0, -2.0, 3.0]))
        grads = tape.gradient(loss, model.trainable_variables)
        missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
        assert not missing, (kind, missing)
