"""Seed aliases, the registry, and every bad input the builders refuse."""

from unittest import mock

import keras
import numpy as np
import pytest

import keras_wrn
from keras_wrn.stats import model_stats


def _same_architecture(a, b):
    assert [layer.name for layer in a.layers] == [layer.name for layer in b.layers]
    assert model_stats(a) == model_stats(b)


def test_seed_wrn_call_is_wrn_28_10():
    seed = keras_wrn.create_wide_residual_network((32, 32, 3), nb_classes=100, N=4, k=10, dropout=0.0,
                                                  compile=False)
    ours = keras_wrn.create_model("wrn-28-10", classes=100, compile=False)
    _same_architecture(seed, ours)
    assert seed.name == "wrn_28_10" and seed.output.shape[-1] == 100


def test_seed_ror_call_is_ror3_110():
    seed = keras_wrn.create_residual_of_residual((32, 32, 3), nb_classes=10, N=2, compile=False)
    _same_architecture(seed, keras_wrn.create_model("ror3-110", compile=False))


def test_seed_pre_ror_call_is_ror3_wrn_40_2():
    seed = keras_wrn.create_pre_residual_of_residual((32, 32, 3), nb_classes=10, N=6, k=2, compile=False)
    _same_architecture(seed, keras_wrn.create_model("ror3-wrn-40-2", compile=False))


def test_seed_input_dim_and_verbose(capsys):
    model = keras_wrn.create_wide_residual_network(input_dim=(32, 32, 3), nb_classes=10, N=1, k=1,
                                                   verbose=1, compile=False)
    assert model.input.shape[1:] == (32, 32, 3)
    assert "WRN-10-1 created" in capsys.readouterr().out


def test_seed_n_for_preact_counts_units():
    basic = keras_wrn.create_pre_activation_resnet(N=18, compile=False)
    assert basic.name == "preact_resnet_110"
    bottleneck = keras_wrn.create_pre_activation_resnet(N=18, block_type="bottleneck", compile=False)
    assert bottleneck.name == "preact_resnet_164"


def test_alias_and_name_agreeing_is_fine():
    model = keras_wrn.create_wide_residual_network(nb_classes=7, classes=7, N=1, depth=10, k=1,
                                                   compile=False)
    assert model.output.shape[-1] == 7


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(nb_classes=100, classes=10), "nb_classes=100 and classes=10"),
        (dict(N=4, depth=16), "N=4 (depth 28) and depth=16"),
        (dict(k=2, width=4), "k=2 and width=4"),
        (dict(input_dim=(32, 32, 3), input_shape=(64, 64, 3)), "input_dim"),
    ],
)
def test_alias_and_name_disagreeing_is_an_error(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        keras_wrn.create_wide_residual_network(**kwargs)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="nb_filters"):
        keras_wrn.create_wide_residual_network(nb_filters=3)


BAD_INPUTS = [
    ("create_wide_residual_network", dict(depth=27), "depth=27.*6n \\+ 4"),
    ("create_wide_residual_network", dict(depth=4), "depth=4"),
    ("create_wide_residual_network", dict(depth=28.0), "depth=28.0"),
    ("create_pre_activation_resnet", dict(depth=111), "depth=111.*6n \\+ 2"),
    ("create_pre_activation_resnet", dict(depth=165), "depth=165.*9n \\+ 2"),
    ("create_pre_activation_resnet", dict(depth=110, block_type="wide"), "block_type='wide'"),
    ("create_residual_of_residual", dict(depth=110 - 6 + 4), "depth=108.*6n \\+ 8"),
    ("create_pre_residual_of_residual", dict(depth=42), "depth=42.*6n \\+ 4"),
    ("create_wide_residual_network", dict(width=0), "width=0"),
    ("create_wide_residual_network", dict(width=1.5), "width=1.5"),
    ("create_wide_residual_network", dict(dropout=1.0), r"dropout=1.0.*\[0, 1\)"),
    ("create_wide_residual_network", dict(dropout=-0.1), "dropout=-0.1"),
    ("create_wide_residual_network", dict(classes=0), "classes=0.*>= 1"),
    ("create_wide_residual_network", dict(nb_classes=0), "classes=0"),
    ("create_wide_residual_network", dict(input_shape=(4, 4, 3)), r"input_shape=\(4, 4, 3\) is too small"),
    ("create_wide_residual_network", dict(input_shape=(3, 32, 32)), "channels-first"),
    ("create_wide_residual_network", dict(input_shape=(32, 32, 0)), "channels=0"),
    ("create_wide_residual_network", dict(input_shape=(32, 32)), r"\(height, width, channels\)"),
    ("create_wide_residual_network", dict(pooling="mean"), "pooling='mean'.*'avg', 'max'"),
    ("create_wide_residual_network", dict(include_top=False, pooling="sum"), "pooling='sum'"),
    ("create_wide_residual_network", dict(weights="/no/such/file.weights.h5"), "weights='/no/such/file"),
    ("create_wide_residual_network", dict(weights="imagenet"), "create_wide_residual_network: weights='imagenet' is neither a released weights name"),
    ("create_wide_residual_network", dict(weight_decay=-1e-4), "weight_decay=-0.0001"),
    ("create_wide_residual_network", dict(N=0), "N=0"),
    ("create_wide_residual_network", dict(include_top="yes"), "include_top"),
]


@pytest.mark.parametrize("builder,kwargs,message", BAD_INPUTS, ids=lambda v: str(v)[:40])
def test_bad_input_is_refused_before_anything_is_built(builder, kwargs, message):
    with mock.patch("keras.Input") as make_input, mock.patch("keras.layers.Conv2D") as make_conv:
        with pytest.raises(ValueError, match=message):
            getattr(keras_wrn, builder)(**kwargs)
    make_input.assert_not_called()
    make_conv.assert_not_called()


def test_error_names_the_builder():
    with pytest.raises(ValueError, match="^create_residual_of_residual: depth=22"):
        keras_wrn.create_residual_of_residual(depth=22)


def test_registry_lists_the_required_names():
    names = keras_wrn.list_models()
    for name in ["wrn-16-4", "wrn-28-10", "preact-110", "preact-164", "preact-1001", "ror3-110",
                 "ror3-wrn-40-2"]:
        assert name in names
    assert keras_wrn.list_models("wrn-28-*") == ["wrn-28-10", "wrn-28-12"]


def test_registry_passes_kwargs_and_refuses_contradictions():
    model = keras_wrn.create_model("wrn-16-1", classes=3, dropout=0.3, compile=False)
    assert model.output.shape[-1] == 3
    assert model.get_layer("group1_block1_dropout").rate == 0.3
    assert keras_wrn.create_model("wrn-16-1", depth=16, compile=False).name == "wrn_16_1"
    with pytest.raises(ValueError, match="depth=22 contradicts the variant 'wrn-16-1'"):
        keras_wrn.create_model("wrn-16-1", depth=22)


def test_registry_unknown_name_suggests():
    with pytest.raises(ValueError, match="unknown model name='wrn-28-11'.*Did you mean"):
        keras_wrn.create_model("wrn-28-11")


# ResNet-1001 alone takes 14-30 s to build: test_param_counts.py builds it once with these arguments.
REGISTERED = [name for name in keras_wrn.list_models() if name != "preact-1001"]
# Every name builds headless; the classifier form is the same code for every name of a builder, so it
# is built for one (small) name of each builder.
WITH_TOP = ("wrn-16-1", "preact-20", "ror3-56", "ror3-wrn-40-2", "resnet26-w0.5", "wrn-ram-28-4")


def test_the_classifier_form_is_built_for_every_builder():
    from keras_wrn.registry import model_args

    builders = {model_args(name)[0] for name in keras_wrn.list_models()}
    assert {model_args(name)[0] for name in WITH_TOP} == builders


@pytest.mark.parametrize("name", REGISTERED)
def test_every_registered_name_takes_the_keras_applications_arguments(name):
    """include_top, weights=None, pooling, classifier_activation, name, input_shape, classes: for every variant."""
    common = dict(weights=None, input_shape=(16, 16, 3), compile=False)
    headless = keras_wrn.create_model(name, include_top=False, pooling="avg", classes=3, name="backbone", **common)
    assert headless.name == "backbone" and headless.input_shape == (None, 16, 16, 3)
    assert len(headless.output_shape) == 2 and "predictions" not in [layer.name for layer in headless.layers]
    if name not in WITH_TOP:
        return
    top = keras_wrn.create_model(name, include_top=True, pooling="max", classes=3, classifier_activation="softmax",
                                 name="classifier", **common)
    assert top.name == "classifier" and top.output_shape == (None, 3)
    assert top.get_layer("predictions").activation is keras.activations.softmax
    assert "max_pool" in [layer.name for layer in top.layers]


def test_released_resnet26_weights_load_through_create_model():
    from keras_wrn.weights import resolve_weights

    name = "resnet26-w0.5.cifar10-jpeg-e8"
    path, entry = resolve_weights(name)
    model = keras_wrn.create_model(entry["model"], weights=name, input_shape=(32, 32, 3), compile=False,
                                   include_preprocessing=False)
    reference = keras_wrn.create_model(entry["model"], input_shape=(32, 32, 3), compile=False)
    reference.load_weights(path)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(model.predict(x, verbose=0), reference.predict(x, verbose=0))
    backbone = keras_wrn.create_model(entry["model"], weights=name, include_top=False, pooling="avg",
                                      input_shape=(32, 32, 3), compile=False)
    np.testing.assert_array_equal(backbone.get_layer("stage3_block4_conv2").kernel.numpy(),
                                  reference.get_layer("stage3_block4_conv2").kernel.numpy())
    with pytest.raises(ValueError, match="were released for resnet26, not create_wide_residual_network"):
        keras_wrn.create_wide_residual_network(weights=name)


def test_name_is_an_ordinary_argument_of_create_model():
    assert keras_wrn.create_model("wrn-16-1", name="x", compile=False).name == "x"
