"""Evaluation: top-1 error, per-class accuracy and the confusion matrix of weights on a data split."""

import os

import numpy as np
import scipy.special

from keras_wrn.data import load_data
from keras_wrn.io import atomic_write
from keras_wrn.precision import resolve_precision
from keras_wrn.registry import create_model, model_args
from keras_wrn.training.loop import build_for_run, outputs_logits
from keras_wrn.training.normalization import normalise, pipeline
from keras_wrn.training.progress import keras_verbose, progress_callbacks
from keras_wrn.training.rundir import read_run_beside
from keras_wrn.weights import is_weights_name, load_weights_file, resolve_weights

__all__ = ["TTA_CHOICES", "evaluate", "plot_confusion"]

# Test-time augmentations: "flip" averages the class probabilities of each image and its mirror image.
TTA_CHOICES = ("none", "flip")


def evaluate(model_name, weights, data, split="test", batch_size=500, confusion_png=None, image_size=None,
             limit=None, verbose=0, precision=None, tta="none", overwrite=True):
    """Top-1 error of ``weights`` on a split of ``data``, and its confusion matrix.

    ``weights`` is a ``.weights.h5`` file or a released weights name
    (`keras_wrn.weights`).  Preprocessing: a release is built with its
    normalisation inside the model and fed raw 0-255 images; when ``weights`` lies in a run directory of `train`
    (``run.json`` beside it), that run's normalisation and class names are
    used and checked against ``model_name`` and the data; otherwise the
    per-channel mean/std of the data's training split.

    ``verbose``: 0 (default) silent; None: a bar on a terminal, plain lines otherwise.
    ``precision``: the model's, `keras_wrn.precision.CHOICES` (default float32);
    weights of any precision load.
    ``tta``: ``"none"`` (default) or ``"flip"``: the class probabilities of
    each image and of its left-right mirror are averaged (the training
    augmentation of every recipe but ``translate`` mirrors images, so the
    mirror is an image of the same class); the error without it is reported
    too, as ``plain_top1_error``.
    ``overwrite``: False refuses to replace an existing ``confusion_png``
    (FileExistsError, raised when the plot is written; `keras-wrn evaluate` checks first).

    Returns:
        dict with ``top1_error`` (fraction), ``accuracy``, ``images``,
        ``per_class_accuracy``, ``confusion_matrix`` (rows: true class),
        ``class_names`` and what was evaluated (``tta``; with ``"flip"``,
        ``plain_top1_error`` too).
    """
    from sklearn.metrics import confusion_matrix  # deferred: scikit-learn, needed only here

    if tta not in TTA_CHOICES:
        raise ValueError(f"--tta {tta!r}: expected one of {', '.join(TTA_CHOICES)}.")
    model_args(model_name)
    precision = resolve_precision(precision, "--precision")
    weights = os.fspath(weights)
    release = None
    if is_weights_name(weights):
        release = weights
        weights, entry = resolve_weights(weights)
        # The release's normalisation is built into the model (include_preprocessing): raw pixels go in.
        run = dict(model=entry["model"], class_names=entry["class_names"],
                   image_shape=entry["preprocessing"]["input_shape"], normalization="meanstd",
                   mean=[0.0] * len(entry["preprocessing"]["mean"]), std=[1.0] * len(entry["preprocessing"]["std"]))
        origin = f"released weights {entry['name']!r}"
    elif not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights {weights!r}: no such file (nor a released weights name).")
    else:
        run, origin = read_run_beside(weights), "a run of model"
    if run is not None and run.get("model") != model_name:
        raise ValueError(f"--weights {weights!r} belongs to {origin} {run.get('model')!r}, not {model_name!r}.")
    if run is not None and image_size is None and run.get("image_shape"):
        image_size = run["image_shape"][:2]
    needs_train = run is None  # no stored statistics: the training split's
    arrays = load_data(data, splits=(split, "train") if needs_train and split != "train" else (split,),
                       image_size=image_size)
    names = arrays["class_names"]
    if run is not None and run.get("class_names") != names:
        raise ValueError(f"--data {data!r} has classes {names}, but {weights} was trained on {run['class_names']}.")
    config = run or {"normalization": "meanstd"}
    zca = None
    if run is None:
        flat = arrays["x_train"].reshape(-1, arrays["x_train"].shape[-1])
        config = dict(config, mean=flat.mean(axis=0).tolist(), std=flat.std(axis=0).tolist())
    elif config.get("normalization") == "zca":
        zca = normalise(config, os.path.dirname(os.path.abspath(weights)), None, write=False)
    images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if limit:
        images, labels = images[:limit], labels[:limit]
    if release is not None:
        model = create_model(release, input_shape=images.shape[1:], compile=False, precision=precision)
    else:
        model = build_for_run(model_name, len(names), images.shape[1:], None, precision)
        try:
            load_weights_file(model, weights, "--weights")
        except ValueError as error:
            if "does not fit the" not in str(error):  # a damaged file: its own message says so
                raise
            raise ValueError(f"--weights {weights!r}: does not fit {model_name} with {len(names)} classes: "
                             f"{error}") from None
    def probabilities(batch_images, what):
        scores = model.predict(pipeline(batch_images, labels, batch_size, config, zca),
                               verbose=keras_verbose(verbose), callbacks=progress_callbacks(verbose, what))
        return scipy.special.softmax(scores, axis=-1) if outputs_logits(model) else scores

    scores = probabilities(images, "evaluate")
    plain_error = None
    if tta == "flip":
        plain_error = float(np.mean(np.argmax(scores, axis=-1) != labels))
        scores = (scores + probabilities(np.ascontiguousarray(images[:, :, ::-1]), "evaluate mirrored")) / 2
    predictions = np.argmax(scores, axis=-1)
    matrix = confusion_matrix(labels, predictions, labels=list(range(len(names))))
    accuracy = float(np.trace(matrix) / max(1, matrix.sum()))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(matrix) / matrix.sum(axis=1)
    result = dict(model=model_name, weights=os.path.abspath(weights), data=os.path.abspath(data), split=split,
                  images=int(len(labels)), precision=precision, tta=tta, accuracy=accuracy, top1_error=1.0 - accuracy,
                  per_class_accuracy={n: (None if np.isnan(a) else float(a)) for n, a in zip(names, per_class)},
                  confusion_matrix=matrix.tolist(), class_names=names)
    if plain_error is not None:
        result["plain_top1_error"] = plain_error
    if confusion_png:
        title = (f"{model_name} on {os.path.basename(os.path.normpath(data))} {split}: top-1 error "
                 f"{100 * (1 - accuracy):.2f}%{' (flip TTA)' if tta == 'flip' else ''}")
        plot_confusion(confusion_png, matrix, names, title, overwrite=overwrite)
        result["confusion_png"] = os.path.abspath(confusion_png)
    return result


def plot_confusion(path, matrix, class_names, title, overwrite=True):
    """The confusion matrix as a PNG (counts printed in the cells up to 20 classes)."""
    import matplotlib  # deferred: Matplotlib, needed only for the plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay  # deferred: scikit-learn, needed only here

    size = max(5.0, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(matrix, display_labels=class_names)
    display.plot(ax=axis, cmap="Blues", colorbar=False, xticks_rotation="vertical",
                 include_values=len(class_names) <= 20, values_format="d")
    axis.set_title(title)
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80), overwrite=overwrite)
    plt.close(figure)
