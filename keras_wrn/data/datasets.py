"""`load_data`: the arrays of a ``--data`` directory, whichever of the supported layouts it has.

A directory is recognised, in this order, as

1. the official CIFAR python batches: it is, or contains, ``cifar-10-batches-py``
   or ``cifar-100-python`` (read by `keras_wrn.data.cifar`);
2. image folders: one ``<split>/<class>/`` tree per requested split, such as the
   extracted cifar10-jpeg archive (read by `keras_wrn.data.folders`);
3. a plain ``<class>/`` image folder, as the training split only (fine-tuning
   splits a validation set off it).

``SAMPLE_NAME`` names the small CIFAR-10 JPEG sample shipped inside the package
at ``SAMPLE_DIR`` (its test split only): ``load_data(SAMPLE_NAME, splits=("test",))``
reads it when no directory of that name exists, so examples and release checks
run offline.
"""

import hashlib
import os

from keras_wrn.data.cifar import CIFAR_LAYOUT, cifar_class_names, load_cifar
from keras_wrn.data.folders import IMAGE_EXTENSIONS, load_image_folder

__all__ = ["SAMPLE_DIR", "SAMPLE_NAME", "data_fingerprint", "has_split", "is_flat_folder", "load_data"]

SAMPLE_NAME = "cifar10-jpeg-sample"
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples", SAMPLE_NAME)

DEFAULT_IMAGE_SIZE = (32, 32)


def _directory(data):
    """``data`` as a path: ``SAMPLE_NAME`` stands for the bundled sample unless a directory has that name."""
    data = os.fspath(data)
    return SAMPLE_DIR if data == SAMPLE_NAME and not os.path.isdir(data) else data


def _cifar_dataset(directory):
    """The `CIFAR_LAYOUT` key whose batch directory ``directory`` is or contains, else None."""
    for dataset, (dirname, _, _, _) in CIFAR_LAYOUT.items():
        if os.path.basename(os.path.normpath(directory)) == dirname or os.path.isdir(os.path.join(directory, dirname)):
            return dataset
    return None


def is_flat_folder(data):
    """Whether ``data`` is a plain ``<class>/`` image folder (no ``train/``/``test/`` splits)."""
    if not os.path.isdir(data) or any(os.path.isdir(os.path.join(data, split)) for split in ("train", "test")):
        return False
    classes = [entry for entry in os.scandir(data) if entry.is_dir()]
    return bool(classes) and any(file.name.lower().endswith(IMAGE_EXTENSIONS)
                                 for folder in classes for file in os.scandir(folder.path))


def has_split(data, split):
    """Whether ``data`` (any layout `load_data` reads) holds ``split``; CIFAR batches hold both."""
    data = _directory(data)
    return _cifar_dataset(data) is not None or os.path.isdir(os.path.join(data, split))


def data_fingerprint(data):
    """sha256 of what identifies ``data``: every file's path relative to it and its size, sorted.

    Runs record it so that ``--resume`` with other data is refused; renaming or
    moving the folder keeps it, adding, removing or resizing a file changes it.
    """
    data = _directory(data)
    digest = hashlib.sha256()
    for folder, directories, files in os.walk(data):
        directories.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(f"{os.path.relpath(path, data)}\0{os.path.getsize(path)}\n".encode())
    return digest.hexdigest()


def load_data(data, splits=("train", "test"), image_size=None):
    """Arrays of the requested splits from a CIFAR batch directory or an image-folder tree.

    ``data`` may be (or contain) ``cifar-10-batches-py`` / ``cifar-100-python``,
    or hold ``train/<class>/`` and ``test/<class>/`` image folders (such as the
    extracted cifar10-jpeg archive), images resized to ``image_size`` (default 32x32).
    ``splits=("train",)`` also reads a plain ``<class>/`` folder as the training split.
    ``SAMPLE_NAME`` stands for the bundled sample unless a directory has that name.

    Returns:
        dict with ``x_<split>, y_<split>`` per split, ``class_names`` and ``format``
        (``"cifar10"``, ``"cifar100"`` or ``"image-folder"``).

    Raises:
        ValueError: ``data`` is not a directory, or holds none of the layouts above.
    """
    data = _directory(data)
    if not os.path.isdir(data):
        raise ValueError(f"--data {data!r} is not a directory.")
    result = {}
    dataset = _cifar_dataset(data)
    if dataset is not None:
        for split in splits:
            result[f"x_{split}"], result[f"y_{split}"] = load_cifar(dataset, split, data)
        return dict(result, class_names=cifar_class_names(dataset, data), format=dataset)
    folders = {split: os.path.join(data, split) for split in splits}
    if splits == ("train",) and not os.path.isdir(folders["train"]) and is_flat_folder(data):
        folders["train"] = data  # a plain <class>/ folder: all of it is training data
    if all(os.path.isdir(folder) for folder in folders.values()):
        size = tuple(image_size) if image_size else DEFAULT_IMAGE_SIZE
        names = None  # the first split's classes; later splits must have the same
        for split, folder in folders.items():
            result[f"x_{split}"], result[f"y_{split}"], names = load_image_folder(folder, size, class_names=names)
        return dict(result, class_names=names, format="image-folder")
    raise ValueError(
        f"--data {data!r}: expected cifar-10-batches-py/ or cifar-100-python/ (the official python "
        f"batches), or {', '.join(split + '/<class>/' for split in splits)} image folders."
    )
