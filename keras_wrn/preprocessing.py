"""What a release's inputs and outputs mean: `preprocess_input` and `decode_predictions`.

As in keras.applications: a model built with ``weights=<release>`` includes its
normalisation by default (``include_preprocessing``), so it takes raw 0-255
RGB images and `preprocess_input` is not needed; for a model built with
``include_preprocessing=False``, `preprocess_input` applies the same
``(x - mean) / std`` per channel that the release was trained with.
`decode_predictions` turns a batch of outputs into the release's class names.
"""

import numpy as np

from keras_wrn.weights import is_weights_name, preprocessing_info

__all__ = ["preprocess_input", "decode_predictions"]


def _release(weights, function):
    if not is_weights_name(weights):
        raise ValueError(f"{function}: weights={weights!r} is not a released weights name "
                         "(see keras_wrn.list_weights()); the statistics and class names are the release's.")
    return preprocessing_info(weights)


def preprocess_input(x, *, weights):
    """``(x - mean) / std`` per channel with the statistics of the release ``weights``.

    Args:
        x: 0-255 RGB images, channels-last, shape ``(..., 3)`` (any numeric dtype).
        weights: a released weights name.

    Returns:
        A float32 NumPy array of the same shape.
    """
    mean, std, _, _ = _release(weights, "preprocess_input")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 1 or x.shape[-1] != len(mean):
        raise ValueError(f"preprocess_input: x has shape {x.shape}; expected channels-last images "
                         f"with {len(mean)} channels (..., {len(mean)}).")
    return (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def decode_predictions(preds, *, weights, top=5):
    """The ``top`` classes of each row of ``preds``, best first, with the release's class names.

    Args:
        preds: ``(batch, classes)`` model outputs (probabilities for softmax
            heads, logits for ResNet-26); the values are returned as given.
        weights: the released weights name the model was built with.
        top: how many classes per row (at most the number of classes).

    Returns:
        One list per row of ``(class_index, class_name, score)`` tuples.
    """
    _, _, class_names, _ = _release(weights, "decode_predictions")
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != len(class_names):
        raise ValueError(f"decode_predictions: preds has shape {preds.shape}; expected (batch, {len(class_names)}), "
                         f"one score per class of {weights!r}.")
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= len(class_names):
        raise ValueError(f"decode_predictions: top={top!r}; expected an integer from 1 to {len(class_names)}.")
    order = np.argsort(-preds, axis=1, kind="stable")[:, :top]
    return [[(int(index), class_names[index], float(row[index])) for index in indices]
            for row, indices in zip(preds, order)]
