"""Losses of the training recipes that Keras has no ready-made class for.

Keras 3's `SparseCategoricalCrossentropy` takes no ``label_smoothing`` (only
the one-hot `CategoricalCrossentropy` does), while this package's datasets
give integer labels.  `SmoothedSparseCategoricalCrossentropy` is the one-hot
loss with smoothing, fed integer labels.
"""

import keras

__all__ = ["SmoothedSparseCategoricalCrossentropy", "recipe_loss"]


@keras.saving.register_keras_serializable(package="keras_wrn")
class SmoothedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Cross-entropy of integer labels against targets smoothed towards uniform.

    The target of a label ``c`` among ``K`` classes is ``(1 - s) * onehot(c) + s / K``
    (Szegedy et al. 2016, Sec. 7), as `keras.losses.CategoricalCrossentropy`
    computes it.

    Args:
        label_smoothing: ``s`` in [0, 1). Defaults to 0.1.
        from_logits: whether predictions are logits (True) or probabilities.
        name, reduction, dtype: as for `keras.losses.Loss`.

    Shapes: ``y_true`` ``(batch,)`` or ``(batch, 1)`` integers, ``y_pred``
    ``(batch, classes)``; returns the reduced loss.
    """

    def __init__(self, label_smoothing=0.1, from_logits=False, name="smoothed_sparse_categorical_crossentropy",
                 reduction="sum_over_batch_size", dtype=None):
        if not isinstance(label_smoothing, (int, float)) or isinstance(label_smoothing, bool) \
                or not 0 <= label_smoothing < 1:
            raise ValueError(f"label_smoothing={label_smoothing!r} is not allowed; expected a number in [0, 1).")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.label_smoothing = float(label_smoothing)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        labels = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
        targets = keras.ops.one_hot(labels, keras.ops.shape(y_pred)[-1], dtype=y_pred.dtype)
        return keras.losses.categorical_crossentropy(targets, y_pred, from_logits=self.from_logits,
                                                     label_smoothing=self.label_smoothing)

    def get_config(self):
        config = super().get_config()
        config.update(label_smoothing=self.label_smoothing, from_logits=self.from_logits)
        return config


def recipe_loss(label_smoothing, from_logits):
    """The training loss of a recipe: Keras' sparse cross-entropy, smoothed when ``label_smoothing`` > 0."""
    if label_smoothing:
        return SmoothedSparseCategoricalCrossentropy(label_smoothing, from_logits=from_logits)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
