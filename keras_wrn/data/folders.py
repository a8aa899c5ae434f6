"""Image folders (``root/<class>/*.jpg|png``) read with Keras' own loader."""

import os

import numpy as np

__all__ = ["load_image_folder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


def _find_corrupt(directory, class_names):
    import tensorflow as tf

    for name in class_names:
        folder = os.path.join(directory, name)
        for file in sorted(os.listdir(folder)):
            if not file.lower().endswith(IMAGE_EXTENSIONS):
                continue
            path = os.path.join(folder, file)
            try:
                tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
            except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
                return path
    return None


def load_image_folder(directory, image_size=(32, 32), class_names=None):
    """Load every image of ``directory/<class>/`` into memory.

    Uses `keras.utils.image_dataset_from_directory` (labels from the sorted
    class folder names, images resized to ``image_size`` if they differ).

    Returns:
        ``(images uint8 (N, H, W, 3), labels int32 (N,), class_names list)``.

    Raises:
        ValueError: a missing or empty directory, or a file that does not
            decode (named), or class folders other than ``class_names``.
    """
    import keras

    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise ValueError(f"load_image_folder: directory={directory!r} does not exist.")
    found = sorted(d for d in os.listdir(directory) if os.path.isdir(os.path.join(directory, d)))
    if not found:
        raise ValueError(
            f"load_image_folder: {directory} has no class folders; expected {directory}/<class>/*.jpg|png."
        )
    if class_names is not None and list(class_names) != found:
        raise ValueError(
            f"load_image_folder: {directory} has class folders {found}, expected {list(class_names)}."
        )
    count = sum(
        file.lower().endswith(IMAGE_EXTENSIONS)
        for name in found
        for file in os.listdir(os.path.join(directory, name))
    )
    if count == 0:
        raise ValueError(
            f"load_image_folder: no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {directory}."
        )
    dataset = keras.utils.image_dataset_from_directory(
        directory,
        labels="inferred",
        label_mode="int",
        class_names=found,
        color_mode="rgb",
        batch_size=512,
        image_size=tuple(image_size),
        shuffle=False,
        verbose=False,
    )
    images, labels = [], []
    try:
        for batch_images, batch_labels in dataset.as_numpy_iterator():
            images.append(np.clip(np.round(batch_images), 0, 255).astype(np.uint8))
            labels.append(batch_labels.astype(np.int32))
    except Exception as error:  # a decode failure inside tf.data does not name the file
        culprit = _find_corrupt(directory, found)
        if culprit is None:
            raise
        raise ValueError(f"load_image_folder: {culprit}: not a readable image ({type(error).__name__}).") from None
    return np.concatenate(images), np.concatenate(labels), found
