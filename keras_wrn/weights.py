"""Released weights (a hash-checked manifest) and loading weight files into a model it is given.

Manifest: ``weights/manifest.json`` describes every released file (builder
arguments, sha256, size, dataset, class names, preprocessing, measured metrics
with the commands that measured them, recipe, parameter count, provenance).
`list_weights`, `weights_info`, `resolve_weights` (hash checked before any
load), `write_manifest`; builders take ``weights=NAME`` or ``weights=PATH``.
The directory is the repository's ``weights/`` (``KERAS_WRN_WEIGHTS_DIR``
overrides it).  Building a model to check a release is the registry's
(`keras_wrn.registry.verify_weights`); releasing a run is `keras_wrn.release`.

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

import h5py
import numpy as np

from keras_wrn.io import atomic_write, sha256_file

__all__ = [
    "weight_file_classes", "load_backbone", "HEAD_LAYERS", "weights_dir", "load_manifest", "list_weights",
    "weights_info", "is_weights_name", "resolve_weights", "default_weights", "write_manifest",
]

MANIFEST = "manifest.json"
ENTRY_FIELDS = ("name", "model", "builder", "arguments", "file", "sha256", "size", "dataset", "class_names",
                "preprocessing", "metrics", "training", "parameters", "provenance")


def weights_dir():
    """The released-weights directory: ``$KERAS_WRN_WEIGHTS_DIR`` or the repository's ``weights/``."""
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
    return os.environ.get("KERAS_WRN_WEIGHTS_DIR", default)


def load_manifest(directory=None):
    """``{name: entry}`` from ``manifest.json`` (empty when there is none)."""
    path = os.path.join(directory or weights_dir(), MANIFEST)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}).") from None
    entries = content.get("weights") if isinstance(content, dict) else None
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: expected {{\"weights\": {{name: entry}}}}.")
    for name, entry in entries.items():
        missing = [field for field in ENTRY_FIELDS if field not in entry]
        if missing or entry["name"] != name:
            raise ValueError(f"{path}: entry {name!r} lacks {missing} or names itself {entry.get('name')!r}.")
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


def is_weights_name(value):
    return isinstance(value, str) and not os.path.exists(value) and value in load_manifest()


def resolve_weights(name):
    """``(path, entry)`` of a released name after checking the file's size and sha256.

    Raises:
        FileNotFoundError: the manifest lists a file that is not there.
        ValueError: the file's size or hash differs (truncated, corrupt, replaced).
    """
    entry = weights_info(name)
    path = os.path.join(weights_dir(), entry["file"])
    if not os.path.isfile(path):
        raise FileNotFoundError(f"weights={name!r}: {path} is missing (the manifest lists it).")
    size = os.path.getsize(path)
    if size != entry["size"]:
        raise ValueError(f"weights={name!r}: {path} has {size:,} bytes, the manifest expects {entry['size']:,} "
                         "(truncated or replaced); restore it from the repository.")
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise ValueError(f"weights={name!r}: {path} has sha256 {actual}, the manifest expects {entry['sha256']} "
                         "(corrupt or replaced); restore it from the repository.")
    return path, entry


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
    """
    path = _check_weight_file(path)
    try:
        with h5py.File(path, "r") as handle:
            layers = handle.get("layers")
            if layers is None:
                raise ValueError(f"{path}: not a Keras 3 .weights.h5 file (no 'layers' group).")
            dense = [name for name in layers if name == "dense" or name.startswith("dense_")]
            if not dense:
                return None
            if len(dense) > 1:
                raise ValueError(f"{path}: holds {len(dense)} Dense layers; expected one classifier head.")
            return int(layers[dense[0]]["vars"]["1"].shape[0])
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 weights file ({error}).") from None


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
        ValueError: the file is not of this architecture (Keras' message names
            the first mismatching layer), or a layer's shapes differ.
    """
    path = _check_weight_file(path)
    source = build_source(weight_file_classes(path))
    try:
        source.load_weights(path)
    except ValueError as error:
        raise ValueError(f"{path}: does not fit the {source.name} architecture: {error}") from None
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
