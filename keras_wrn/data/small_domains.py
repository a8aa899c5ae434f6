"""Small real image domains that ship inside scikit-learn and scikit-image.

Without the Visual Decathlon files, these are the target domains on which the
residual-adapter modes are compared (`keras_wrn.decathlon.compare_modes`):

- ``"digits"``: scikit-learn's handwritten digits (UCI optical recognition
  set): 1,797 greyscale 8x8 images, ink levels 0..16, 10 classes.
- ``"lfw-faces"``: scikit-image's LFW subset: 100 face crops from Labeled
  Faces in the Wild and 100 non-face patches, greyscale 25x25 in [0, 1];
  2 classes (``non-face``, ``face``).

Each is put on the 0-255 scale, resized to ``image_size`` (bilinear,
``tf.image.resize``), replicated to 3 channels and split by
``sklearn.model_selection.train_test_split`` (stratified, seeded).  Arrays are
uint8 ``(N, H, W, 3)``, labels int32 ``(N,)``, ready for
`keras_wrn.data.make_dataset`.
"""

import collections

import numpy as np

__all__ = ["SMALL_DOMAINS", "DomainData", "load_small_domain"]

DomainData = collections.namedtuple("DomainData", "name x_train y_train x_test y_test class_names augmentation")


def _digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images / 16.0, bunch.target, [str(c) for c in bunch.target_names]


def _lfw_faces():
    try:
        from skimage.data import lfw_subset
    except ImportError as error:
        raise ImportError("the 'lfw-faces' domain needs scikit-image (pip install scikit-image).") from error
    images = lfw_subset()  # the first 100 are faces, the last 100 are not (scikit-image's documentation)
    labels = np.concatenate([np.ones(100, np.int32), np.zeros(100, np.int32)])
    return images, labels, ["non-face", "face"]


# name -> (loader returning images in [0, 1] (N, H, W) with labels and class names,
#          augmentation: digits must not be mirrored, faces may)
SMALL_DOMAINS = {
    "digits": (_digits, "translate"),
    "lfw-faces": (_lfw_faces, "wrn"),
}


def load_small_domain(name, image_size=32, test_fraction=0.25, seed=0):
    """The domain ``name`` as a `DomainData` of uint8 RGB images ``image_size`` square.

    Args:
        name: a key of `SMALL_DOMAINS`.
        image_size: side of the square output images (the network's input).
        test_fraction: share of every class held out for testing.
        seed: seeds the split.
    """
    import tensorflow as tf
    from sklearn.model_selection import train_test_split

    if name not in SMALL_DOMAINS:
        raise ValueError(f"domain {name!r} is not a bundled small domain; expected one of {sorted(SMALL_DOMAINS)}.")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size={image_size!r}: expected an integer >= 8.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction={test_fraction!r}: expected a number strictly between 0 and 1.")
    loader, augmentation = SMALL_DOMAINS[name]
    images, labels, class_names = loader()
    resized = tf.image.resize(images[..., None].astype(np.float32) * 255.0, (image_size, image_size)).numpy()
    rgb = np.repeat(np.clip(np.round(resized), 0, 255).astype(np.uint8), 3, axis=-1)
    x_train, x_test, y_train, y_test = train_test_split(rgb, labels.astype(np.int32), test_size=test_fraction,
                                                        stratify=labels, random_state=seed)
    return DomainData(name, x_train, y_train, x_test, y_test, class_names, augmentation)
