"""A run's input normalisation, kept with the run, and the input pipeline that applies it.

- ``"meanstd"``: per-channel mean and standard deviation of the training
  images, stored in ``run.json`` (``mean``, ``std``, rounded to 4 decimals);
- ``"zca"``: ZCA whitening as in WRN v1, fitted on the training images and
  stored as ``zca.npz`` in the run directory.

Evaluation of a run's weights reads the same statistics back, so it sees the
inputs training saw.
"""

import os

import numpy as np

from keras_wrn.data import apply_zca, fit_zca, make_dataset
from keras_wrn.io import atomic_write

__all__ = ["NORMALIZATIONS", "check_normalization", "normalise", "pipeline"]

NORMALIZATIONS = ("meanstd", "zca")
ZCA_FILE = "zca.npz"


def check_normalization(normalization):
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"--normalization {normalization!r} is not allowed; expected one of {list(NORMALIZATIONS)}.")


def normalise(config, run_dir, x_train, write):
    """The run's normalisation: mean/std put into ``config``, or ZCA from/to ``run_dir``.

    Args:
        config: the run's description; for ``"meanstd"`` its ``mean`` and
            ``std`` are set from ``x_train`` unless already there (a resumed run).
        run_dir: where ``zca.npz`` is read from or written to.
        x_train: the training images (None when only reading a stored ZCA).
        write: save a newly fitted ZCA to ``run_dir``.

    Returns:
        None for ``"meanstd"``; ``(mean, matrix)`` for ``"zca"``.
    """
    if config["normalization"] == "meanstd":
        flat = x_train.reshape(-1, x_train.shape[-1])
        config.setdefault("mean", [round(float(v), 4) for v in flat.mean(axis=0)])
        config.setdefault("std", [round(float(v), 4) for v in flat.std(axis=0)])
        return None
    path = os.path.join(run_dir, ZCA_FILE)
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as stored:
            return stored["mean"], stored["matrix"]
    if x_train is None:
        raise ValueError(f"{path}: missing; a ZCA run keeps its whitening there.")
    mean, matrix = fit_zca(x_train)
    if write:
        atomic_write(path, lambda temporary: np.savez(temporary, mean=mean, matrix=matrix))
    return mean, matrix


def pipeline(images, labels, batch_size, config, zca, augmentation="none", shuffle=False, seed=0):
    """A `tf.data` pipeline of normalised (and optionally augmented, shuffled) batches.

    The shuffle order is fixed by ``seed`` (no reshuffling between iterations):
    training builds one pipeline per epoch with that epoch's seed.
    """
    if zca is None:
        return make_dataset(images, labels, batch_size, config["mean"], config["std"], augmentation, shuffle, seed,
                            reshuffle_each_iteration=False)
    channels = images.shape[-1]
    return make_dataset(apply_zca(images, *zca), labels, batch_size, (0.0,) * channels, (1.0,) * channels,
                        augmentation, shuffle, seed, reshuffle_each_iteration=False)
