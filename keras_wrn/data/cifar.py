"""CIFAR-10 / CIFAR-100 from the official python batches, without unpickling arbitrary objects.

The batches are Python pickles of a dict ``{b"data": uint8 array (N, 3072),
b"labels" | b"fine_labels": list, ...}``.  `SafeCifarUnpickler` resolves only
the globals an array pickle needs (three NumPy ones and ``_codecs.encode``); any other global (the way a
malicious pickle runs code) is refused, no array or string may be larger than the bytes the file
holds for it, and the loaded content is checked against the format before use.
"""

import contextvars
import io
import math
import os
import pickle
import pickletools
import struct

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
_MAX_IMAGES = {"train": 50_000, "test": 10_000}  # per batch file
_DTYPE_CODES = frozenset({"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8"})
_MAX_DIMENSIONS = 32
_LIMITS = contextvars.ContextVar("keras_wrn_cifar_unpickler_limits", default=None)


class _Limits:
    """What the pickle being loaded may still build: array bytes and ``_codecs.encode`` output,
    each at most the file's size (a legitimate pickle holds every array's bytes once)."""

    def __init__(self, size):
        self.size = size
        self.left = {"array": size, "encoded": size}

    def take(self, kind, count):
        if count > self.left[kind]:
            raise pickle.UnpicklingError(
                f"the pickle builds more {kind} bytes than the {self.size} bytes of the file hold "
                f"(another {count} requested); refused before allocating"
            )
        self.left[kind] -= count


def _limits():
    limits = _LIMITS.get()
    if limits is None:
        raise pickle.UnpicklingError("CIFAR pickle objects are built only by SafeCifarUnpickler.load()")
    return limits


def _is_shape(shape):
    return (isinstance(shape, tuple) and len(shape) <= _MAX_DIMENSIONS
            and all(type(size) is int and size >= 0 for size in shape))


def _text(value):
    return value.decode("latin1") if isinstance(value, bytes) else value


def _encode(text, encoding="utf-8", errors="strict"):
    """``_codecs.encode(str, "latin1")``, how Python 3 writes bytes in a protocol-2 pickle; any
    other codec is refused, and the output counts against the file's size (a memoised string
    encoded over and over would otherwise multiply it)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise pickle.UnpicklingError("_codecs.encode is allowed only as encode(str, 'latin1')")
    _limits().take("encoded", len(text))
    return text.encode("latin1")


class _DtypeSpec:
    """``numpy.dtype(code, align, copy)`` in a pickle: plain numbers only (booleans, integers,
    floats), so no structured, sub-array, void or object type, whose item size or content the
    file does not bound.  NumPy builds the dtype from the checked code and byte order alone."""

    def __init__(self, code, align=False, copy=False):
        code = _text(code)
        if code not in _DTYPE_CODES:
            raise pickle.UnpicklingError(f"dtype {code!r} is not allowed; expected one of {sorted(_DTYPE_CODES)}")
        self.dtype = np.dtype(code)

    def __setstate__(self, state):
        """``(version, byte order, subarray, names, fields, item size, alignment, flags[, metadata])``."""
        if not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise pickle.UnpicklingError(f"dtype state {state!r} is not a version 3 or 4 state of a plain dtype")
        order = _text(state[1])
        plain = state[2:5] == (None, None, None) and state[5] in (-1, self.dtype.itemsize)
        if order not in ("<", ">", "|", "=") or not plain or state[8:] not in ((), (None,)):
            raise pickle.UnpicklingError(f"dtype state {state!r} is not that of a plain {self.dtype} dtype")
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


class _ArrayType:
    """``numpy.ndarray`` in a pickle: only ``_reconstruct`` may name it; calling it, which would
    allocate whatever shape the pickle asks for, is refused."""

    __slots__ = ()

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("numpy.ndarray(...) is not allowed; arrays must be pickled as NumPy pickles them")


_ARRAY_TYPE = _ArrayType()


def _reconstruct(subtype, shape, typecode):
    """NumPy's first step of unpickling an array.  Only the empty ``(ndarray, (0,), b"b")`` that
    NumPy writes is allowed: the real shape comes with the state, checked against its bytes."""
    if subtype is not _ARRAY_TYPE or not _is_shape(shape) or math.prod(shape) or _text(typecode) != "b":
        raise pickle.UnpicklingError(
            f"_reconstruct with shape {shape!r} and type code {typecode!r} is not allowed; NumPy pickles an "
            f"empty numpy.ndarray of shape (0,) and type code b'b' and sets its shape and bytes afterwards"
        )
    _limits()
    return np.ndarray.__new__(_PickledArray, (0,), np.uint8)


class _PickledArray(np.ndarray):
    """An array being unpickled.  Its state ``([1,] shape, dtype, fortran, data)`` is checked
    before NumPy allocates anything: a plain dtype (`_DtypeSpec`), a bytes payload of exactly
    shape x item size bytes, and over the whole pickle no more array bytes than the file holds
    (several arrays can otherwise share one memoised payload).  ``numpy.asarray`` gives the
    plain array."""

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5) or (len(state) == 5 and state[0] != 1):
            raise pickle.UnpicklingError("an array's state must be (1, shape, dtype, fortran, data)")
        shape, spec, fortran, data = state[-4:]
        flag = type(fortran) in (bool, int) and fortran in (0, 1)
        if not _is_shape(shape) or not isinstance(spec, _DtypeSpec) or not flag:
            raise pickle.UnpicklingError(f"array state with shape {shape!r} and dtype {spec!r} is not allowed")
        if not isinstance(data, (bytes, str)):
            raise pickle.UnpicklingError(f"an array's data must be bytes, got {type(data).__name__}")
        size = math.prod(shape) * spec.dtype.itemsize
        if size != len(data):
            raise pickle.UnpicklingError(
                f"array of shape {shape} and dtype {spec.dtype} needs {size} bytes; the pickle holds {len(data)}"
            )
        _limits().take("array", size)
        super().__setstate__((1, shape, spec.dtype, bool(fortran), data))

    def __reduce_ex__(self, protocol):
        return np.asarray(self).__reduce_ex__(protocol)


_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _ARRAY_TYPE,
    ("numpy", "dtype"): _DtypeSpec,
    # Protocol-2 pickles written by Python 3 store bytes as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): _encode,
}


def _argument_layout(opcode):
    """How ``opcode``'s argument is laid out, from `pickletools`' descriptors: ``("fixed", size)``,
    ``("lines", count)`` or ``("counted", struct format of the byte count before the bytes)``."""
    argument = opcode.arg
    if argument is None or argument.n >= 0:
        return "fixed", 0 if argument is None else argument.n
    if argument.n == pickletools.UP_TO_NEWLINE:
        return "lines", 2 if argument.name == "stringnl_noescape_pair" else 1
    formats = {pickletools.TAKEN_FROM_ARGUMENT1: "<B", pickletools.TAKEN_FROM_ARGUMENT4: "<i",
               pickletools.TAKEN_FROM_ARGUMENT4U: "<I", pickletools.TAKEN_FROM_ARGUMENT8U: "<Q"}
    return "counted", formats[argument.n]


_LAYOUTS = {ord(opcode.code): _argument_layout(opcode) for opcode in pickletools.opcodes}
_STOP, _FRAME = ord(pickle.STOP), ord(pickle.FRAME)


def _check_opcodes(content):
    """Walk the pickle's opcodes before anything is built: every counted string, bytes and frame
    must fit in the file.  `pickle` allocates a counted object before reading it, so a few bytes
    claiming terabytes would otherwise fail with ``MemoryError`` (or take the memory)."""
    position = 0
    while position < len(content):
        code = content[position]
        if code not in _LAYOUTS:
            raise pickle.UnpicklingError(f"malformed pickle: unknown opcode {code:#04x} at byte {position}")
        if code == _STOP:
            return
        following = _argument_end(content, position + 1, code)
        if following is None:
            raise pickle.UnpicklingError(
                f"malformed pickle: the opcode at byte {position} claims more than the {len(content)} bytes of "
                f"the file; refused before allocating"
            )
        position = following
    raise pickle.UnpicklingError(f"malformed pickle: no STOP opcode in its {len(content)} bytes")


def _argument_end(content, position, code):
    """Where the argument of opcode ``code``, starting at ``position``, ends; None when it runs past
    the end of ``content`` (for a frame: when the frame it announces does)."""
    kind, detail = _LAYOUTS[code]
    if kind == "lines":
        for _ in range(detail):
            newline = content.find(b"\n", position)
            if newline < 0:
                return None
            position = newline + 1
        return position
    if kind == "counted":
        size = struct.calcsize(detail)
        if position + size > len(content):
            return None
        count = struct.unpack_from(detail, content, position)[0]
        position += size + count
        return position if count >= 0 and position <= len(content) else None
    position += detail
    if position > len(content):
        return None
    if code == _FRAME and struct.unpack_from("<Q", content, position - 8)[0] > len(content) - position:
        return None
    return position


class SafeCifarUnpickler(pickle.Unpickler):
    """An unpickler for data only: dicts, lists, bytes, numbers and NumPy arrays of plain dtypes.

    Any global but the few an array pickle needs (the way a malicious pickle runs code) is
    refused, and nothing may grow beyond the file: the opcodes are checked before loading, each
    array's shape must match the bytes it is given, and arrays together (like ``_codecs.encode``
    output) hold at most the file's size.  A refusal is ``pickle.UnpicklingError``.  The rest of
    ``file`` is read at construction.
    """

    def __init__(self, file, **kwargs):
        self._content = file.read()
        super().__init__(io.BytesIO(self._content), **kwargs)

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[module, name]
        raise pickle.UnpicklingError(
            f"global '{module}.{name}' is not allowed in a CIFAR batch (only NumPy arrays are)"
        )

    def load(self):
        _check_opcodes(self._content)
        token = _LIMITS.set(_Limits(len(self._content)))
        try:
            return super().load()
        finally:
            _LIMITS.reset(token)


def _read_batch(path, label_key, classes, split):
    try:
        with open(path, "rb") as handle:
            content = SafeCifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a CIFAR python batch ({error}).") from None
    if not isinstance(content, dict) or b"data" not in content or label_key not in content:
        keys = sorted(content) if isinstance(content, dict) else type(content).__name__
        raise ValueError(
            f"{path}: not a CIFAR python batch; expected a dict with b'data' and {label_key!r}, got {keys}."
        )
    data = _checked_data(path, content[b"data"], split)
    labels = _checked_labels(path, content[label_key], label_key, len(data), classes)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _checked_data(path, data, split):
    """``b"data"`` as a plain array: uint8 of shape (N, 3072) with N at most what one batch file
    of ``split`` holds."""
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        shape = getattr(data, "shape", None)
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, 3072), got {shape}.")
    if len(data) > _MAX_IMAGES[split]:
        raise ValueError(
            f"{path}: b'data' holds {len(data)} images; a CIFAR {split} batch file holds at most {_MAX_IMAGES[split]}."
        )
    return np.asarray(data)


def _checked_labels(path, labels, label_key, count, classes):
    """The labels as int32: a list or 1-D integer array of ``count`` values in ``0..classes - 1``."""
    if not isinstance(labels, (list, np.ndarray)):
        raise ValueError(
            f"{path}: {label_key!r} must be a list of {count} integer labels, got {type(labels).__name__}."
        )
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path}: {label_key!r} must hold {count} integer labels, got {labels.shape}.")
    if labels.size and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(
            f"{path}: labels out of range: found {labels.min()}..{labels.max()}, expected 0..{classes - 1}."
        )
    return labels.astype(np.int32)


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
            parts = [_read_batch(path, label_key, classes, split) for path in paths]
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
                content = SafeCifarUnpickler(handle, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
            raise ValueError(f"{path}: not a CIFAR metadata file ({error}).") from None
        names = content.get(key) if isinstance(content, dict) else None
        if not isinstance(names, list) or len(names) != classes:
            raise ValueError(f"{path}: expected a dict with {key!r}, a list of {classes} names.")
        return [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names]
    return [str(i) for i in range(classes)]
