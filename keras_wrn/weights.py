"""Released weights: the manifest, finding a release's file (local, cache, download), loading files into a model.

Manifest: ``weights/manifest.json`` in the repository, shipped inside the
package as ``keras_wrn/manifest.json`` (setup.py copies it at build time),
describes every release: builder arguments, file name, ``origin`` URL, sha256,
size, dataset, class names, preprocessing, measured metrics with the commands
that measured them, recipe, parameter count, provenance.  A releases folder
named by ``KERAS_WRN_WEIGHTS_DIR`` may hold a ``manifest.json`` of its own
(``keras-wrn weights release`` writes there); its entries are added to the
project's, and take precedence for a name both list.

Finding a release's file, like `keras.utils.get_file` (`resolve_weights`):

1. the local releases folder: ``$KERAS_WRN_WEIGHTS_DIR``, or the checkout's ``weights/``;
2. the cache, ``$KERAS_HOME/models/keras_wrn/`` (``~/.keras/models/keras_wrn/``
   by default, as Keras defines ``KERAS_HOME``);
3. a download into the cache from the release's URL: the manifest's
   ``origin``, or ``$KERAS_WRN_WEIGHTS_URL`` (or the ``base_url`` argument)
   with the file name appended.

Every file is checked against the manifest's size and sha256 before it is
used; a download that does not match is deleted, never cached.

Loading:

Keras 3 ``.weights.h5`` files store variables by layer *creation order*
(``layers/conv2d_3/vars/0``), not by layer name, so a file loads only into the
architecture that wrote it.  `load_backbone` therefore rebuilds the source
architecture with the file's own classifier width, loads the file there (Keras
checks every shape), and copies the weights layer by layer, by our stable
layer names, into the target model, leaving its head (``predictions``) alone.
"""

import fnmatch
import json
import os
import shutil
import tempfile

import numpy as np

from keras_wrn.io import raised_by_hdf5, atomic_write, hdf5_file_error, open_hdf5, sha256_file

__all__ = [
    "weight_file_classes", "load_weights_file", "load_backbone", "HEAD_LAYERS", "weights_dir", "cache_dir",
    "load_manifest", "list_weights", "weights_info", "is_weights_name", "resolve_weights", "download_weights",
    "weights_url", "default_weights", "write_manifest", "preprocessing_info", "RELEASES_URL",
]

MANIFEST = "manifest.json"
ENTRY_FIELDS = ("name", "model", "builder", "arguments", "file", "origin", "sha256", "size", "dataset",
                "class_names", "preprocessing", "metrics", "training", "parameters", "provenance")
# Where the project publishes its release assets; an entry's ``origin`` is this plus its file name.
RELEASES_URL = "https://github.com/keras-wrn/keras_wrn/releases/download/weights-v1/"
URL_VARIABLE = "KERAS_WRN_WEIGHTS_URL"
DIR_VARIABLE = "KERAS_WRN_WEIGHTS_DIR"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_CHECKOUT_WEIGHTS = os.path.join(os.path.dirname(_PACKAGE_DIR), "weights")


def weights_dir():
    """The local releases folder: ``$KERAS_WRN_WEIGHTS_DIR`` or the checkout's ``weights/`` (may not exist)."""
    return os.environ.get(DIR_VARIABLE, _CHECKOUT_WEIGHTS)


def project_manifest_path():
    """The project's manifest: the checkout's ``weights/manifest.json``, else the installed package's copy."""
    checkout = os.path.join(_CHECKOUT_WEIGHTS, MANIFEST)
    return checkout if os.path.isfile(checkout) else os.path.join(_PACKAGE_DIR, MANIFEST)


def cache_dir():
    """Where downloaded releases are kept: ``<KERAS_HOME>/models/keras_wrn``.

    ``KERAS_HOME`` as Keras resolves it: the environment variable, else
    ``~/.keras`` (``/tmp/.keras`` when the home directory is not writable).
    """
    home = os.environ.get("KERAS_HOME")
    if not home:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return os.path.join(home, "models", "keras_wrn")


def _read_manifest(path):
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}).") from None
    entries = content.get("weights") if isinstance(content, dict) else None
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: expected {{\"weights\": {{name: entry}}}}.")
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: entry {name!r} is not an object.")
        missing = [field for field in ENTRY_FIELDS if field not in entry]
        if missing or entry["name"] != name:
            raise ValueError(f"{path}: entry {name!r} lacks {missing} or names itself {entry.get('name')!r}.")
        file = entry["file"]
        if not isinstance(file, str) or os.path.basename(file) != file or file in ("", ".", ".."):
            raise ValueError(f"{path}: entry {name!r} has file={file!r}; expected a bare file name "
                             "(no directories, no '..').")
    return entries


def load_manifest(directory=None):
    """``{name: entry}`` of the releases folder ``directory`` only, or (default) every release known here.

    By default: the project's manifest, updated with the entries of
    ``$KERAS_WRN_WEIGHTS_DIR/manifest.json`` when that exists.
    """
    if directory is not None:
        path = os.path.join(directory, MANIFEST)
        return _read_manifest(path) if os.path.isfile(path) else {}
    entries = {}
    project = project_manifest_path()
    if os.path.isfile(project):
        entries.update(_read_manifest(project))
    local = os.path.join(weights_dir(), MANIFEST)
    if os.path.isfile(local) and os.path.abspath(local) != os.path.abspath(project):
        entries.update(_read_manifest(local))
    return entries


def list_weights(pattern="*"):
    """Sorted names of released weights matching the shell-style ``pattern``."""
    return sorted(name for name in load_manifest() if fnmatch.fnmatch(name, pattern))


def default_weights(model):
    """The release marked default for the registry variant ``model`` (or None)."""
    for name, entry in load_manifest().items():
        if entry["model"] == model and entry.get("default"):
            return name
    return None


def weights_info(name):
    """The manifest entry of the released weights ``name`` (a copy)."""
    entries = load_manifest()
    if name not in entries:
        known = ", ".join(sorted(entries)) or "none yet"
        raise ValueError(f"weights={name!r} is neither a released weights name ({known}) nor an existing file.")
    return json.loads(json.dumps(entries[name]))


def preprocessing_info(name):
    """``(mean, std, class_names, input_shape)`` of the release ``name``: what its inputs and outputs mean."""
    entry = weights_info(name)
    preprocessing = entry["preprocessing"]
    return preprocessing["mean"], preprocessing["std"], entry["class_names"], tuple(preprocessing["input_shape"])


def is_weights_name(value):
    return isinstance(value, str) and not os.path.exists(value) and value in load_manifest()


def weights_url(entry, base_url=None):
    """The URL a release is downloaded from: ``base_url`` or ``$KERAS_WRN_WEIGHTS_URL`` plus its file name,
    else its manifest ``origin``."""
    base = base_url or os.environ.get(URL_VARIABLE)
    if base:
        return base.rstrip("/") + "/" + entry["file"]
    return entry["origin"]


def _mismatch(path, entry):
    """None when ``path`` has the entry's size and sha256, else what differs (``"N bytes, the manifest ..."``)."""
    size = os.path.getsize(path)
    if size != entry["size"]:
        return f"{size:,} bytes, the manifest expects {entry['size']:,}"
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        return f"sha256 {actual}, the manifest expects {entry['sha256']}"
    return None


def _download(entry, url, target):
    """Download ``url`` into ``target`` via `keras.utils.get_file`, only if it matches ``entry``."""
    import keras  # deferred: TensorFlow starts with Keras; only a download needs it

    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".download-", dir=folder)
    try:
        try:
            fetched = keras.utils.get_file(fname=entry["file"], origin=url, cache_dir=scratch, cache_subdir="")
        except Exception as error:  # get_file reports every network failure as a bare Exception
            raise FileNotFoundError(
                f"weights={entry['name']!r}: not in the releases folder ({weights_dir()}) nor the cache "
                f"({target}), and downloading {url} failed: {error}. Offline, fetch that URL elsewhere and "
                f"put the file at {target} (or into $KERAS_WRN_WEIGHTS_DIR); $KERAS_WRN_WEIGHTS_URL sets "
                "another server."
            ) from None
        mismatch = _mismatch(fetched, entry)
        if mismatch:
            raise ValueError(f"weights={entry['name']!r}: {url} served a file with {mismatch}; the download was "
                             "deleted and nothing was cached.")
        os.replace(fetched, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def resolve_weights(name, base_url=None):
    """``(path, entry)`` of the release ``name``: its verified file, downloaded into the cache if need be.

    Looks in the local releases folder, then the cache, then downloads (see
    the module docstring); every file is checked against the manifest's size
    and sha256 before it is returned.

    Raises:
        ValueError: ``name`` is not released, a local file's size or hash
            differs (truncated, corrupt, replaced), or a download does.
        FileNotFoundError: the file is nowhere here and downloading failed
            (the message names the URL and where to put the file by hand).
    """
    entry = weights_info(name)
    local = os.path.join(weights_dir(), entry["file"])
    if os.path.isfile(local):
        mismatch = _mismatch(local, entry)
        if mismatch:
            raise ValueError(f"weights={name!r}: {local} has {mismatch} (truncated, corrupt or replaced); "
                             "restore it or delete it to download the release.")
        return local, entry
    cached = os.path.join(cache_dir(), entry["file"])
    if os.path.isfile(cached):
        if _mismatch(cached, entry) is None:
            return cached, entry
        os.remove(cached)  # a damaged cache entry is replaced by a fresh download
    return _download(entry, weights_url(entry, base_url), cached), entry


def download_weights(names=None, base_url=None):
    """Fill the cache with the releases ``names`` (default: all); returns ``{name: path}``."""
    return {name: resolve_weights(name, base_url)[0] for name in (names or list_weights())}


HEAD_LAYERS = ("predictions",)


def _check_weight_file(path, argument="weights"):
    path = os.fspath(path)
    if not path.endswith(".weights.h5"):
        raise ValueError(f"{argument}={path!r}: expected a Keras weights file ending in .weights.h5.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{argument}={path!r}: no such file.")
    return path


def weight_file_classes(path):
    """The classifier width stored in a ``.weights.h5`` file of one of our models.

    Our models have exactly one Dense layer (the head), saved as ``layers/dense``.
    Returns None for a headless file (``include_top=False``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a ``.weights.h5`` path, an empty, corrupt or truncated
            file, or not the weights of a keras_wrn model (each naming the file).
    """
    import h5py  # deferred: listing releases needs no HDF5

    path = _check_weight_file(path)
    with open_hdf5(path, "a Keras weights file") as handle:
        layers = handle.get("layers")
        if not isinstance(layers, h5py.Group):
            raise ValueError(f"{path}: not a Keras 3 .weights.h5 file (no 'layers' group).")
        dense = [name for name in layers if name == "dense" or name.startswith("dense_")]
        if not dense:
            return None
        if len(dense) > 1:
            raise ValueError(f"{path}: holds {len(dense)} Dense layers; expected one classifier head.")
        variables = layers[dense[0]].get("vars")
        bias = variables.get("1") if isinstance(variables, h5py.Group) else None
        if not isinstance(bias, h5py.Dataset) or len(bias.shape) != 1:
            raise ValueError(f"{path}: layers/{dense[0]} has no bias vector 'vars/1'; not the weights of a "
                             "keras_wrn classifier.")
        return int(bias.shape[0])


def load_weights_file(model, path, what="weights"):
    """``model.load_weights(path)`` for a Keras ``.weights.h5`` file, with one clear error for a bad file.

    The file is opened with `keras_wrn.io.open_hdf5` first (every object header
    visited, data in other files refused); HDF5 errors Keras meets while
    reading (a damaged header, heap or chunk) become the same ``ValueError``.

    Args:
        model: a built Keras model.
        path: the ``.weights.h5`` file.
        what: how messages name the file's argument or role, e.g. ``"--weights"``
            or ``"checkpoint"``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a ``.weights.h5`` path; an empty, corrupt or truncated
            file ("corrupt or truncated HDF5 file"); one that refers to other
            files; or one of another architecture ("does not fit", with Keras'
            message naming the first mismatching layer).
    """
    path = _check_weight_file(path, what)
    with open_hdf5(path, "a Keras weights file"):
        pass
    try:
        model.load_weights(path)
    except Exception as error:
        if raised_by_hdf5(error):
            raise hdf5_file_error(path, "a Keras weights file", error) from None
        if isinstance(error, ValueError):
            raise ValueError(f"{path}: does not fit the {model.name} architecture: {error}") from None
        raise


def load_backbone(model, path, build_source, head_layers=HEAD_LAYERS):
    """Copy every layer's weights except the head from the file ``path`` into ``model``.

    Args:
        model: the target Keras model (any classifier width or input size).
        path: a ``.weights.h5`` written by a model of the same architecture.
        build_source: ``build_source(classes)`` returns an uncompiled model of
            the file's architecture with that classifier width.
        head_layers: layer names left untouched in ``model``.

    Returns:
        The names of the layers whose weights were copied.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is empty, corrupt or truncated, not of this
            architecture (Keras' message names the first mismatching layer), or
            a layer's shapes differ.
    """
    path = _check_weight_file(path)
    source = build_source(weight_file_classes(path))
    load_weights_file(source, path)
    copied = []
    source_layers = {layer.name: layer for layer in source.layers}
    for layer in model.layers:
        if layer.name in head_layers or not layer.weights:
            continue
        if layer.name not in source_layers:
            raise ValueError(f"{path}: has no layer {layer.name!r} for {model.name}.")
        values = source_layers[layer.name].get_weights()
        shapes = [np.shape(v) for v in values]
        expected = [tuple(w.shape) for w in layer.weights]
        if shapes != expected:
            raise ValueError(f"{path}: layer {layer.name!r} has shapes {shapes}, {model.name} expects {expected}.")
        layer.set_weights(values)
        copied.append(layer.name)
    return copied


def write_manifest(entries, directory=None):
    """Write ``{name: entry}`` as the manifest of ``directory`` (default `weights_dir`), atomically."""
    content = {"format": 1, "weights": {name: entries[name] for name in sorted(entries)}}

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=2)
            stream.write("\n")

    atomic_write(os.path.join(directory or weights_dir(), MANIFEST), write)
