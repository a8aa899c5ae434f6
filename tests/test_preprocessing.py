"""Preprocessing travels with the weights: raw 0-255 images into a release's model, `preprocess_input`,
`decode_predictions`, and release names as model names."""

import numpy as np
import pytest

import keras_wrn
from keras_wrn.data import load_data
from keras_wrn.data.datasets import SAMPLE_NAME
from keras_wrn.weights import weights_info

NAME = "wrn-16-1.cifar10-jpeg-e10"


@pytest.fixture(scope="module")
def sample():
    arrays = load_data(SAMPLE_NAME, splits=("test",))
    return arrays["x_test"], arrays["y_test"]  # uint8 0-255 RGB, as decoded from the JPEG files


@pytest.fixture(scope="module")
def release_model():
    return keras_wrn.create_model(NAME)


def sample_error(model, images, labels):
    return float(np.mean(np.argmax(model.predict(images.astype("float32"), verbose=0), -1) != labels))


def test_raw_images_give_the_manifests_sample_error(release_model, sample):
    recorded = next(m for m in weights_info(NAME)["metrics"] if m["data"] == SAMPLE_NAME)["top1_error"]
    assert release_model.get_layer("preprocessing").__class__.__name__ == "Normalization"
    assert round(sample_error(release_model, *sample), 6) == recorded


def test_preprocess_input_equals_the_built_in_normalisation(release_model, sample):
    images = sample[0][:64]
    bare = keras_wrn.create_model("wrn-16-1", weights=NAME, include_preprocessing=False)
    assert "preprocessing" not in [layer.name for layer in bare.layers]
    np.testing.assert_allclose(bare.predict(keras_wrn.preprocess_input(images, weights=NAME), verbose=0),
                               release_model.predict(images.astype("float32"), verbose=0), rtol=1e-5, atol=1e-6)
    preprocessing = weights_info(NAME)["preprocessing"]
    np.testing.assert_allclose(keras_wrn.preprocess_input(np.full((1, 2, 2, 3), 128, np.uint8), weights=NAME)[0, 0, 0],
                               (128 - np.array(preprocessing["mean"])) / np.array(preprocessing["std"]), rtol=1e-6)


def test_decode_predictions_names_the_release_classes(release_model, sample):
    images, labels = sample
    decoded = keras_wrn.decode_predictions(release_model.predict(images[:8].astype("float32"), verbose=0),
                                           weights=NAME, top=3)
    class_names = weights_info(NAME)["class_names"]
    assert len(decoded) == 8 and all(len(row) == 3 for row in decoded)
    for row in decoded:
        scores = [score for _, _, score in row]
        assert scores == sorted(scores, reverse=True)
        assert all(class_names[index] == name for index, name, _ in row)
    hits = sum(row[0][0] == label for row, label in zip(decoded, labels[:8]))
    assert hits >= 5  # an 18.7%-error model


@pytest.mark.parametrize("call, message", [
    (lambda: keras_wrn.preprocess_input(np.zeros((2, 2, 4)), weights=NAME), "expected channels-last images with 3"),
    (lambda: keras_wrn.preprocess_input(np.zeros((2, 2, 3)), weights="nope"), "weights='nope' is not a released"),
    (lambda: keras_wrn.decode_predictions(np.zeros((2, 5)), weights=NAME), r"expected \(batch, 10\)"),
    (lambda: keras_wrn.decode_predictions(np.zeros((2, 10)), weights=NAME, top=11), "top=11; expected an integer"),
    (lambda: keras_wrn.create_model("wrn-16-1", include_preprocessing=True),
     "include_preprocessing=True needs weights=<a released name>"),
    (lambda: keras_wrn.create_model("wrn-16-1", weights=NAME, include_preprocessing="yes"),
     "include_preprocessing='yes' is not allowed"),
    (lambda: keras_wrn.create_model(NAME, weights="preact-20.cifar10-jpeg-e15"), "contradicts it"),
])
def test_bad_arguments_name_themselves(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_release_name_is_a_model_name(release_model):
    assert release_model.name == "wrn_16_1" and release_model.output_shape == (None, 10)
    reference = keras_wrn.create_model("wrn-16-1", weights=NAME)
    for a, b in zip(release_model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    head = keras_wrn.create_model(NAME, classes=5, compile=False)  # a new head on the released backbone
    assert head.output_shape == (None, 5)
    np.testing.assert_array_equal(head.get_layer("stem_conv").get_weights()[0],
                                  reference.get_layer("stem_conv").get_weights()[0])
    with pytest.raises(ValueError, match="Did you mean wrn-16-1.cifar10-jpeg-e10"):
        keras_wrn.create_model("wrn-16-1.cifar10-jpeg-e11")
