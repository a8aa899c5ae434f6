"""The Visual Decathlon (Rebuffi et al. 2017): COCO-style annotations, images and per-domain statistics.

Layout of an extracted ``decathlon-1.0`` directory (the challenge's, used by
the reference code, seed 001)::

    ROOT/annotations/<domain>_train.json, <domain>_val.json, <domain>_test_stripped.json
    ROOT/data/<domain>/<split>/...jpg          (``file_name`` in the JSON is relative to ROOT)
    ROOT/decathlon_mean_std.pickle             ({"<domain>mean": [r, g, b], "<domain>std": [...]})

Each JSON holds ``images`` (``id``, ``file_name``), ``categories`` (``id``) and,
except for the test split, ``annotations`` (``image_id``, ``category_id``).
Labels are the positions of the category ids in sorted order.

Preprocessing (paper-numbers.md): shorter side resized to 72 px; training
takes a random 64x64 crop and a horizontal flip, evaluation the centre 64x64;
gtsrb, omniglot and svhn use the centre 72x72 crop and no flip in both.
"""

import dataclasses
import json
import os
import pickle
import re

import numpy as np

from keras_wrn.data.cifar import SafeCifarUnpickler

__all__ = ["DOMAINS", "DecathlonSplit", "load_decathlon", "read_mean_std", "decathlon_dataset"]

# domain -> classes (paper-numbers.md), in the order of the papers' tables.
DOMAINS = {
    "imagenet12": 1000, "aircraft": 100, "cifar100": 100, "daimlerpedcls": 2, "dtd": 47, "gtsrb": 43,
    "vgg-flowers": 102, "omniglot": 1623, "svhn": 10, "ucf101": 101,
}
CENTRE_CROP_DOMAINS = ("gtsrb", "omniglot", "svhn")
RESIZE, CROP = 72, 64
SPLIT_FILES = {"train": ("train",), "val": ("val",), "test": ("test_stripped", "test")}
MEAN_STD_FILE = "decathlon_mean_std.pickle"
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclasses.dataclass
class DecathlonSplit:
    """One domain's split: image paths, labels (None for the unlabelled test split), ids."""

    domain: str
    split: str
    paths: list
    image_ids: np.ndarray
    labels: np.ndarray | None
    category_ids: list


def _annotation_path(root, domain, split):
    looked = [os.path.join(root, "annotations", f"{domain}_{name}.json") for name in SPLIT_FILES[split]]
    for path in looked:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"load_decathlon: no annotation file for {domain} {split}; looked for {', '.join(looked)}. "
        "Get decathlon-1.0-data.tar.gz and the annotations from the Visual Decathlon site "
        "(www.robots.ox.ac.uk/~vgg/decathlon) and extract both into the same root."
    )


def _fail(path, message):
    raise ValueError(f"{path}: {message}")


def load_decathlon(root, domain, split="train"):
    """Read ``domain``'s ``split`` annotations under ``root``; returns a `DecathlonSplit`.

    Raises:
        FileNotFoundError: the annotation file or an image is missing (named).
        ValueError: one error naming the annotation file and the field for malformed JSON, a
            missing key, a field of the wrong type (ids must be JSON integers, file names
            strings), image file names that leave ``root``, annotations naming unknown image
            ids, category ids outside ``categories``, a class count other than the domain's, or
            labelled splits with unlabelled images.
    """
    root = os.fspath(root)
    if domain not in DOMAINS:
        raise ValueError(f"load_decathlon: domain={domain!r} is not allowed; expected one of {sorted(DOMAINS)}.")
    if split not in SPLIT_FILES:
        raise ValueError(f"load_decathlon: split={split!r} is not allowed; expected one of {sorted(SPLIT_FILES)}.")
    path = _annotation_path(root, domain, split)
    content = _read_json(path)
    ids, names = _images(path, content)
    category_ids = _category_ids(path, content)
    pairs = _annotations(path, content, split)
    labels = None if pairs is None else _labels(path, domain, ids, category_ids, pairs)
    _check_inside_root(path, root, names)
    paths = [os.path.join(root, name) for name in names]
    for image_path in paths[:1] + paths[-1:]:
        if not os.path.isfile(image_path):
            raise FileNotFoundError(f"{path}: image {image_path} does not exist (file_name is relative to {root}).")
    return DecathlonSplit(domain, split, paths, np.asarray(ids), labels, category_ids)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        _fail(path, f"not a JSON annotation file ({error}).")
    if not isinstance(content, dict):
        _fail(path, f"expected a JSON object with an 'images' list (COCO style), got a {type(content).__name__}.")
    return content


def _records(path, content, key, item, fields):
    """``content[key]``: a list of JSON objects, each an ``item`` with ``fields`` (named on refusal)."""
    records = content.get(key)
    if not isinstance(records, list):
        got = "none" if records is None else f"a {type(records).__name__}"
        _fail(path, f"expected a JSON object with an {key!r} list of objects with {fields} (COCO style), got {got}.")
    for number, record in enumerate(records):
        if not isinstance(record, dict):
            _fail(path, f"{item} {number} must be an object with {fields}, got {record!r}.")
    return records


def _integers(path, records, field, item):
    """``field`` of every record, each a JSON integer (not a string, float, boolean or null); the
    first that is not is named by its ``item`` number."""
    values = [record.get(field) for record in records]
    for number, value in enumerate(values):
        if type(value) is not int:
            _fail(path, f"{item} {number} has no {field!r}." if field not in records[number]
                  else f"{item} {number} has {field!r} {value!r}; expected an integer.")
    return values


def _images(path, content):
    """Image ids (unique integers) and file names (non-empty strings), in the file's order."""
    images = _records(path, content, "images", "image", "'id' and 'file_name'")
    ids = _integers(path, images, "id", "image")
    names = [image.get("file_name") for image in images]
    for number, name in enumerate(names):
        if not isinstance(name, str) or not name:
            _fail(path, f"image {number} has 'file_name' {name!r}; expected a non-empty string.")
    if len(set(ids)) != len(ids):
        _fail(path, "image ids are not unique.")
    return ids, names


def _category_ids(path, content):
    """The sorted, unique integer category ids (none when the file has no 'categories')."""
    if "categories" not in content:
        return []
    categories = _records(path, content, "categories", "category", "an 'id'")
    ids = sorted(_integers(path, categories, "id", "category"))
    if len(set(ids)) != len(ids):
        _fail(path, "category ids are not unique.")
    return ids


def _annotations(path, content, split):
    """``(image_id, category_id)`` of every annotation, or None for an unlabelled test split."""
    if content.get("annotations") in (None, []):
        if split != "test":
            _fail(path, f"the {split} split needs 'annotations' (only the test split is unlabelled).")
        return None
    annotations = _records(path, content, "annotations", "annotation", "'image_id' and 'category_id'")
    image_ids = _integers(path, annotations, "image_id", "annotation")
    return list(zip(image_ids, _integers(path, annotations, "category_id", "annotation")))


def _labels(path, domain, ids, category_ids, pairs):
    """Each image's label: the position of its annotation's category id among the sorted ids."""
    if len(category_ids) != DOMAINS[domain]:
        _fail(path, f"has {len(category_ids)} categories; {domain} has {DOMAINS[domain]} classes.")
    position = {image_id: index for index, image_id in enumerate(ids)}
    label_of = {category: index for index, category in enumerate(category_ids)}
    labels = np.full(len(ids), -1, np.int64)
    for number, (image_id, category) in enumerate(pairs):
        if image_id not in position:
            _fail(path, f"annotation {number} refers to image_id {image_id}, which is not among the images.")
        if category not in label_of:
            _fail(path, f"annotation {number} has category_id {category}, outside the file's "
                        f"{len(category_ids)} categories ({category_ids[0]}..{category_ids[-1]}); "
                        f"labels must lie in 0..{DOMAINS[domain] - 1}.")
        labels[position[image_id]] = label_of[category]
    if (labels < 0).any():
        missing = [ids[i] for i in np.flatnonzero(labels < 0)[:5]]
        _fail(path, f"{int((labels < 0).sum())} images have no annotation (ids {missing}...).")
    return labels


def _check_inside_root(path, root, names):
    """Every ``file_name`` must name a file inside ``root``: absolute names, ``..`` components and
    names that resolve (through links) out of the root are refused, all of them counted in one
    error; an annotation file could otherwise have any readable file on the machine read as data."""
    resolver, refused = _RootResolver(root), []
    for name in names:
        reason = resolver.problem(name)
        if reason:
            refused.append((name, reason))
    if refused:
        name, reason = refused[0]
        _fail(path, f"{len(refused)} of {len(names)} image file_names are not inside the data root {root}, "
                    f"e.g. {name!r} ({reason}); a file_name must be a relative path without '..' that "
                    f"resolves inside the root.")


def _lexical_problem(name):
    """Why ``name``, read as a path, is not relative to the root (a NUL, a leading separator or
    drive letter, a ``..`` component with either separator), or None."""
    if "\x00" in name:
        return "it has a NUL character"
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        return "it is an absolute path"
    if ".." in name and ".." in re.split(r"[\\/]", name):
        return "it has a '..' component"
    return None


class _RootResolver:
    """Where file names under a root resolve, with one ``realpath`` per directory and one listing
    per directory to find the links among its files."""

    def __init__(self, root):
        self.root = os.path.realpath(root)
        self.directories = {}
        self.links = {}

    def problem(self, name):
        """Why ``name`` does not lie inside the root, or None."""
        if "\x00" in name or ".." in name or name[0] in "/\\" or name[1:2] == ":":
            reason = _lexical_problem(name)
            if reason:
                return reason
        parent, _, leaf = (name.replace(os.altsep, os.sep) if os.altsep else name).rpartition(os.sep)
        directory, inside = self._directory(parent)
        if not inside:
            return f"its directory resolves to {directory}"
        if leaf in self._links(directory):
            resolved = os.path.realpath(os.path.join(directory, leaf))
            if not self._inside(resolved):
                return f"it is a link to {resolved}"
        return None

    def _inside(self, path):
        return os.path.commonpath([self.root, path]) == self.root

    def _directory(self, parent):
        """``parent``'s resolved path and whether it lies inside the root."""
        if parent not in self.directories:
            directory = os.path.realpath(os.path.join(self.root, parent))
            self.directories[parent] = directory, self._inside(directory)
        return self.directories[parent]

    def _links(self, directory):
        if directory not in self.links:
            try:
                with os.scandir(directory) as entries:
                    self.links[directory] = {entry.name for entry in entries if entry.is_symlink()}
            except OSError:
                self.links[directory] = set()
        return self.links[directory]


def read_mean_std(path, domain):
    """Per-channel ``(mean, std)`` of ``domain`` on the 0-255 scale from the challenge's pickle.

    The pickle is read with the data-only unpickler (dicts, lists, numbers,
    NumPy arrays); statistics stored on the 0-1 scale are rescaled.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, MEAN_STD_FILE)
    try:
        with open(path, "rb") as handle:
            content = SafeCifarUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise FileNotFoundError(f"read_mean_std: {path} does not exist.") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a Decathlon mean/std pickle ({error}).") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: expected a dict of '<domain>mean' / '<domain>std', got {type(content).__name__}.")
    stats = []
    for key in (f"{domain}mean", f"{domain}std"):
        value = content.get(key, content.get(key.encode()))
        try:
            value = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            value = None
        if value is None or value.shape != (3,) or not np.isfinite(value).all():
            raise ValueError(f"{path}: {key!r} must hold 3 numbers, got {content.get(key)!r}.")
        stats.append(value)
    mean, std = stats
    if (std <= 0).any():
        raise ValueError(f"{path}: {domain}std must be positive, got {std.tolist()}.")
    scale = 255.0 if mean.max() <= 1.0 and std.max() <= 1.0 else 1.0
    return tuple((mean * scale).tolist()), tuple((std * scale).tolist())


def _resize_shorter(image, size):
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size / tf.reduce_min(shape)
    new_shape = tf.cast(tf.round(shape * scale), tf.int32)
    return tf.image.resize(image, tf.maximum(new_shape, size), method="bilinear", antialias=True)


def decathlon_dataset(split, batch_size, mean, std, training=False, seed=0, shuffle=None):
    """A batched `tf.data.Dataset` of a `DecathlonSplit`: ``(image, label)``, or images alone for test.

    Images are float32, normalised with ``mean``/``std`` (0-255 scale), of
    size 64x64 (72x72 for gtsrb, omniglot, svhn); see the module doc.
    """
    import tensorflow as tf

    from keras_wrn.data.augment import normalize  # deferred: TensorFlow

    centre_only = split.domain in CENTRE_CROP_DOMAINS
    crop = RESIZE if centre_only else CROP
    shuffle = training if shuffle is None else shuffle

    def prepare(path, element_seed):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = _resize_shorter(tf.cast(image, tf.float32), RESIZE)
        if training and not centre_only:
            image = tf.image.stateless_random_crop(image, (crop, crop, 3), seed=element_seed)
            image = tf.image.stateless_random_flip_left_right(image, seed=element_seed[::-1])
        else:
            height, width = tf.shape(image)[0], tf.shape(image)[1]
            image = tf.image.crop_to_bounding_box(image, (height - crop) // 2, (width - crop) // 2, crop, crop)
        return normalize(image, mean, std)

    paths = tf.data.Dataset.from_tensor_slices(split.paths)
    labelled = split.labels is not None
    dataset = tf.data.Dataset.zip((paths, tf.data.Dataset.from_tensor_slices(split.labels))) if labelled else paths
    if shuffle:
        dataset = dataset.shuffle(len(split.paths), seed=seed, reshuffle_each_iteration=True)
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    dataset = tf.data.Dataset.zip((dataset, seeds))
    if labelled:
        dataset = dataset.map(lambda pair, s: (prepare(pair[0], s), pair[1]), num_parallel_calls=tf.data.AUTOTUNE)
    else:
        dataset = dataset.map(lambda path, s: prepare(path, s), num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
