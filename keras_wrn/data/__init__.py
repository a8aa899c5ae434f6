"""Data for training and evaluation: CIFAR python batches, archives, augmentation.

- `load_cifar`: the official python batches (``cifar-10-batches-py``,
  ``cifar-100-python``), read with an unpickler that admits only what the
  format holds.
- `extract_archive`: tar/zip extraction that refuses members escaping the target.
- `augment`: the papers' augmentations as `tf.data` functions.
- `load_image_folder`: ``root/<class>/*.jpg`` via Keras' own loader.
- `load_data`: a ``--data`` directory of either layout (CIFAR batches or image
  folders), and the bundled sample ``SAMPLE_NAME`` at ``SAMPLE_DIR``.
- `decathlon`: the Visual Decathlon's COCO-style annotations and statistics.
- `whitening`: ZCA (WRN v1).
- `small_domains`: real target domains bundled with scikit-learn/scikit-image.
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
from keras_wrn.data.cifar import cifar_class_names, load_cifar
from keras_wrn.data.datasets import SAMPLE_DIR, SAMPLE_NAME, load_data
from keras_wrn.data.decathlon import decathlon_dataset, load_decathlon, read_mean_std
from keras_wrn.data.folders import load_image_folder
from keras_wrn.data.small_domains import SMALL_DOMAINS, load_small_domain
from keras_wrn.data.whitening import apply_zca, fit_zca

__all__ = [
    "AUGMENTATIONS",
    "CIFAR10_JPEG_MEAN",
    "CIFAR10_JPEG_STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "SAMPLE_DIR",
    "SAMPLE_NAME",
    "SMALL_DOMAINS",
    "apply_zca",
    "augment_fn",
    "cifar_class_names",
    "decathlon_dataset",
    "extract_archive",
    "fit_zca",
    "load_cifar",
    "load_data",
    "load_decathlon",
    "load_image_folder",
    "load_small_domain",
    "make_dataset",
    "normalize",
    "read_mean_std",
]
