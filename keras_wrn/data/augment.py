"""The papers' augmentations and normalisation as `tf.data` functions.

- ``"wrn"``: reflection-pad by 4, random 32x32 crop, horizontal flip
  (Zagoruyko & Komodakis 2016; their ``augmentation.lua``).
- ``"preact"``: zero-pad by 4 (zeros of the *normalised* image, i.e. the mean
  colour), random crop, horizontal flip (He et al. 2016, fb.resnet.torch).
- ``"translate"``: reflection-pad by 4 and random crop, no flip (for domains
  where mirroring changes the class, e.g. digits).
- ``"none"``: identity (evaluation).

Every random choice uses stateless ops keyed by a per-image ``seed`` of shape
``[2]``, so a pipeline is reproducible from its seed.
"""

import tensorflow as tf

__all__ = ["AUGMENTATIONS", "augment_fn", "normalize", "make_dataset"]

# Official CIFAR-10 statistics on the 0-255 scale, and those of the JPEG copy
# in ../shared/data (its README): mean/std per channel, RGB.
CIFAR10_MEAN = (125.3, 123.0, 113.9)
CIFAR10_STD = (63.0, 62.1, 66.7)
CIFAR10_JPEG_MEAN = (125.27, 122.93, 113.86)
CIFAR10_JPEG_STD = (62.53, 61.91, 66.46)
PAD = 4


def normalize(image, mean, std):
    """``(image - mean) / std`` per channel, as float32; any leading shape."""
    image = tf.cast(image, tf.float32)
    return (image - tf.constant(mean, tf.float32)) / tf.constant(std, tf.float32)


def _pad_crop(image, seed, mode):
    padded = tf.pad(image, [[PAD, PAD], [PAD, PAD], [0, 0]], mode=mode)
    return tf.image.stateless_random_crop(padded, tf.shape(image), seed=seed)


def _pad_crop_flip(image, seed, mode):
    return tf.image.stateless_random_flip_left_right(_pad_crop(image, seed, mode), seed=seed[::-1])


AUGMENTATIONS = {
    "wrn": lambda image, seed: _pad_crop_flip(image, seed, "REFLECT"),
    "preact": lambda image, seed: _pad_crop_flip(image, seed, "CONSTANT"),
    "translate": lambda image, seed: _pad_crop(image, seed, "REFLECT"),
    "none": lambda image, seed: image,
}


def augment_fn(kind):
    """The augmentation ``(image HWC, seed [2]) -> image HWC`` named ``kind``."""
    if kind not in AUGMENTATIONS:
        raise ValueError(f"augment_fn: augmentation={kind!r} is not allowed; expected one of {sorted(AUGMENTATIONS)}.")
    return AUGMENTATIONS[kind]


def make_dataset(images, labels, batch_size, mean, std, augmentation="none", shuffle=False, seed=0,
                 reshuffle_each_iteration=True):
    """A batched `tf.data.Dataset` of normalised (and augmented) images.

    Args:
        images: uint8 array ``(N, H, W, C)``; labels: int array ``(N,)``.
        batch_size: images per batch (the last batch may be smaller).
        mean, std: per-channel statistics on the 0-255 scale.
        augmentation: a key of `AUGMENTATIONS`; applied after normalisation.
        shuffle: reshuffle every epoch (seeded).
        seed: seeds the shuffle and the augmentation streams.
        reshuffle_each_iteration: draw a new order and new augmentations on
            every pass (a multi-epoch ``fit``).  False repeats the first pass,
            and keeps the stream identical when `tf.distribute` rewrites the
            dataset graph (stateful seed generators are re-created there);
            `keras_wrn.training` builds one such dataset per epoch.
    """
    augment = augment_fn(augmentation)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=reshuffle_each_iteration)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=reshuffle_each_iteration).batch(2)
    dataset = tf.data.Dataset.zip((dataset, seeds))
    dataset = dataset.map(
        lambda pair, pair_seed: (augment(normalize(pair[0], mean, std), pair_seed), pair[1]),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
