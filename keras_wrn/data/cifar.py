"""CIFAR-10 / CIFAR-100 from the official python batches, without unpickling arbitrary objects.

The batches are Python pickles of a dict ``{b"data": uint8 array (N, 3072),
b"labels" | b"fine_labels": list, ...}``.  `SafeCifarUnpickler` resolves only
the globals an array pickle needs (three NumPy ones and ``_codecs.encode``); any other global (the way a
malicious pickle runs code) is refused, and the loaded content is checked
against the format before use.
"""

import io
import os
import pickle

import numpy as np

__all__ = ["load_cifar", "cifar_class_names", "SafeCifarUnpickler", "CIFAR_LAYOUT"]

# dataset -> (directory name, {split: [batch files]}, label key, classes)
CIFAR_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
        b"labels",
        10,
    ),
    "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, b"fine_labels", 100),
}
# dataset -> (metadata file, key of the class-name list)
CIFAR_META = {"cifar10": ("batches.meta", b"label_names"), "cifar100": ("meta", b"fine_label_names")}
DOWNLOAD_HINT = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    # Protocol-2 pickles written by Python 3 store an array's bytes as
    # _codecs.encode(str, "latin1"): a pure data transform, no code is run.
    ("_codecs", "encode"),
}


class SafeCifarUnpickler(pickle.Unpickler):
    """An unpickler for data only: dicts, lists, bytes, numbers and NumPy arrays."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"global '{module}.{name}' is not allowed in a CIFAR batch (only NumPy arrays are)"
        )


def _read_batch(path, label_key, classes):
    try:
        with open(path, "rb") as handle:
            content = SafeCifarUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a CIFAR python batch ({error}).") from None
    if not isinstance(content, dict) or b"data" not in content or label_key not in content:
        keys = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(
            f"{path}: not a CIFAR python batch; expected a dict with b'data' and {label_key!r}, got {keys}."
        )
    data = content[b"data"]
    labels = np.asarray(content[label_key])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, 3072), got {shape}.")
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: {label_key!r} must hold {len(data)} integer labels, got {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"{path}: labels out of range: found {labels.min()}..{labels.max()}, expected 0..{classes - 1}."
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels.astype(np.int32)


def _candidate_directories(dirname, directory):
    if directory is not None:
        directory = os.fspath(directory)
        return [directory, os.path.join(directory, dirname)]
    cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "datasets")
    return [os.path.join(cache, dirname)]


def load_cifar(dataset="cifar10", split="train", directory=None):
    """Load a CIFAR split as ``(images uint8 (N, 32, 32, 3), labels int32 (N,))``.

    Args:
        dataset: ``"cifar10"`` or ``"cifar100"`` (fine labels).
        split: ``"train"`` or ``"test"``.
        directory: the extracted batch directory or its parent; by default the
            Keras cache (``~/.keras/datasets``, where `keras.datasets` puts it).

    Raises:
        FileNotFoundError: naming every place looked at and how to get the data.
        ValueError: a bad argument, or a file that is not in the CIFAR format.
    """
    if dataset not in CIFAR_LAYOUT:
        raise ValueError(f"load_cifar: dataset={dataset!r} is not allowed; expected one of {sorted(CIFAR_LAYOUT)}.")
    dirname, splits, label_key, classes = CIFAR_LAYOUT[dataset]
    if split not in splits:
        raise ValueError(f"load_cifar: split={split!r} is not allowed; expected one of {sorted(splits)}.")
    looked = []
    for candidate in _candidate_directories(dirname, directory):
        paths = [os.path.join(candidate, name) for name in splits[split]]
        if all(os.path.isfile(path) for path in paths):
            parts = [_read_batch(path, label_key, classes) for path in paths]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        looked.extend(paths)
    raise FileNotFoundError(
        f"load_cifar: {dataset} {split} batches not found; looked for: {', '.join(looked)}. "
        f"Download and extract {DOWNLOAD_HINT[dataset]} there (or call keras.datasets."
        f"{dataset}.load_data() once while online), or pass directory=."
    )


def cifar_class_names(dataset="cifar10", directory=None):
    """Class names from the batches' metadata file (``batches.meta`` / ``meta``).

    Falls back to ``"0", "1", ...`` when the file is absent; a file that is
    present but not in the format is an error.
    """
    if dataset not in CIFAR_LAYOUT:
        raise ValueError(f"cifar_class_names: dataset={dataset!r} is not allowed; expected one of {sorted(CIFAR_LAYOUT)}.")
    dirname, _, _, classes = CIFAR_LAYOUT[dataset]
    filename, key = CIFAR_META[dataset]
    for candidate in _candidate_directories(dirname, directory):
        path = os.path.join(candidate, filename)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, "rb") as handle:
                content = SafeCifarUnpickler(io.BytesIO(handle.read()), encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: not a CIFAR metadata file ({error}).") from None
        names = content.get(key) if isinstance(content, dict) else None
        if not isinstance(names, list) or len(names) != classes:
            raise ValueError(f"{path}: expected a dict with {key!r}, a list of {classes} names.")
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    return [str(i) for i in range(classes)]
