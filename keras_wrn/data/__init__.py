"""Data for training and evaluation: CIFAR python batches, archives, augmentation.

- `load_cifar`: the official python batches (``cifar-10-batches-py``,
  ``cifar-100-python``), read with an unpickler that admits only what the
  format holds.
- `extract_archive`: tar/zip extraction that refuses members escaping the target.
- `augment`: the papers' augmentations as `tf.data` functions.
"""

from keras_wrn.data.archives import extract_archive
from keras_wrn.data.augment import (
    AUGMENTATIONS,
    CIFAR10_JPEG_MEAN,
    CIFAR10_JPEG_STD,
    CIFAR10_MEAN,
    CIFAR10_STD,
    augment_fn,
    make_dataset,
    normalize,
)
from keras_wrn.data.cifar import load_cifar
from keras_wrn.data.folders import load_image_folder

__all__ = [
    "AUGMENTATIONS",
    "CIFAR10_JPEG_MEAN",
    "CIFAR10_JPEG_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "augment_fn",
    "extract_archive",
    "load_cifar",
    "load_image_folder",
    "make_dataset",
    "normalize",
]
