"""The recipes' losses: label smoothing for integer labels, against Keras' one-hot loss."""

import keras
import numpy as np
import pytest

from keras_wrn.losses import SmoothedSparseCategoricalCrossentropy, recipe_loss


@pytest.mark.parametrize("from_logits", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_matches_keras_one_hot_loss_with_smoothing(from_logits, smoothing):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, size=(16,))
    scores = rng.normal(size=(16, 7)).astype("float32")
    if not from_logits:
        scores = keras.ops.convert_to_numpy(keras.ops.softmax(scores))
    ours = SmoothedSparseCategoricalCrossentropy(smoothing, from_logits=from_logits)(labels[:, None], scores)
    reference = keras.losses.CategoricalCrossentropy(from_logits=from_logits, label_smoothing=smoothing)(
        np.eye(7)[labels], scores)
    assert float(ours) == pytest.approx(float(reference), rel=1e-6)
    if smoothing == 0:
        plain = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)(labels, scores)
        assert float(ours) == pytest.approx(float(plain), rel=1e-5)


def test_round_trips_its_config_and_refuses_bad_smoothing():
    loss = SmoothedSparseCategoricalCrossentropy(0.2, from_logits=True)
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert (restored.label_smoothing, restored.from_logits) == (0.2, True)
    for bad in (1.0, -0.1, "0.1", True):
        with pytest.raises(ValueError, match="label_smoothing=.* expected a number in \\[0, 1\\)"):
            SmoothedSparseCategoricalCrossentropy(bad)


def test_recipe_loss_smooths_only_when_asked():
    assert isinstance(recipe_loss(0.0, True), keras.losses.SparseCategoricalCrossentropy)
    assert recipe_loss(0.1, False).label_smoothing == 0.1
