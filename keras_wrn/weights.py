"""Released weights (a hash-checked registry) and loading weight files into models.

Registry: ``weights/manifest.json`` describes every released file (builder
arguments, sha256, size, dataset, class names, preprocessing, measured metrics
with the commands that measured them, recipe, parameter count, provenance).
`list_weights`, `weights_info`, `resolve_weights` (hash checked before any
load), `verify_weights`; builders take ``weights=NAME`` or ``weights=PATH``.
The directory is the repository's ``weights/`` (``KERAS_WRN_WEIGHTS_DIR``
overrides it).

Loading:

Keras 3 ``.weights.h5`` files store variables by layer *creation order*
(``layers/conv2d_3/vars/0``), not by layer name, so a file loads only into the
architecture that wrote it.  `load_backbone` therefore rebuilds the source
architecture with the file's own classifier width, loads the file there (Keras
checks every shape), and copies the weights layer by layer, by our stable
layer names, into the target model, leaving its head (``predictions``) alone.
"""

import fnmatch
import hashlib
import json
import os

import h5py
import numpy as np

__all__ = [
    "weight_file_classes", "load_backbone", "HEAD_LAYERS", "weights_dir", "load_manifest", "list_weights",
    "weights_info", "resolve_weights", "verify_weights", "sha256_file", "default_weights",
]

MANIFEST = "manifest.json"
ENTRY_FIELDS = ("name", "model", "builder", "arguments", "file", "sha256", "size", "dataset", "class_names",
                "preprocessing", "metrics", "training", "parameters", "provenance")


def source_commit():
    """``git describe``-style provenance of the package's code: commit hash, "+dirty" if modified."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if dirty else "")


def weights_dir():
    """The released-weights directory: ``$KERAS_WRN_WEIGHTS_DIR`` or the repository's ``weights/``."""
    default = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights")
    return os.environ.get("KERAS_WRN_WEIGHTS_DIR", default)


def sha256_file(path, chunk=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


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


def verify_weights(name):
    """Check a release: hash and size, then that it loads into its builder and the parameter count.

    Returns:
        dict with ``name, file, sha256, parameters`` (as measured).
    """
    from keras_wrn.registry import create_model

    path, entry = resolve_weights(name)
    model = create_model(entry["model"], **entry["arguments"], compile=False)
    try:
        model.load_weights(path)
    except ValueError as error:
        raise ValueError(f"weights={name!r}: {path} does not load into {entry['model']}: {error}") from None
    parameters = model.count_params()
    if parameters != entry["parameters"]:
        raise ValueError(f"weights={name!r}: the model has {parameters:,} parameters, the manifest says "
                         f"{entry['parameters']:,}.")
    return dict(name=name, file=path, sha256=entry["sha256"], parameters=parameters)

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


SAMPLE_NAME = "cifar10-jpeg-sample"
SAMPLE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "samples", SAMPLE_NAME)
TRAINING_MACHINE = "2-core x86_64 CPU (AVX2+FMA), no GPU: this project's development machine"


def _write_manifest(entries, directory):
    from keras_wrn.training import _atomic_write

    content = {"format": 1, "weights": {name: entries[name] for name in sorted(entries)}}

    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=2)
            stream.write("\n")

    _atomic_write(os.path.join(directory, MANIFEST), write)


def release(run_dir, name, data, dataset="cifar10-jpeg", which="last", default=False, training_command=None,
            training_commit=None, wall_time=None):
    """Release a `keras_wrn.training.train` run as ``weights/<name>.weights.h5`` with its manifest entry.

    Evaluates the weights on the full test split of ``data`` and on the bundled
    sample, records hash, size, parameter count, preprocessing, recipe and
    provenance.  An existing name is refused (releases are immutable).
    """
    import shutil

    from keras_wrn.registry import create_model, model_args
    from keras_wrn.training import _atomic_write, evaluate

    run_dir = os.fspath(run_dir)
    with open(os.path.join(run_dir, "run.json"), encoding="utf-8") as stream:
        run = json.load(stream)
    with open(os.path.join(run_dir, "state.json"), encoding="utf-8") as stream:
        state = json.load(stream)
    if which not in ("last", "best"):
        raise ValueError(f"which={which!r} is not allowed; expected 'last' or 'best'.")
    directory = weights_dir()
    entries = load_manifest(directory)
    if name in entries:
        raise ValueError(f"weights {name!r} are already released; releases are immutable, choose another name.")
    if state["completed_epochs"] != run["epochs"]:
        raise ValueError(f"{run_dir}: {state['completed_epochs']} of {run['epochs']} epochs done; finish it first.")
    image_shape = run.get("image_shape") or [32, 32, 3]  # runs before the field existed trained at 32x32
    source = os.path.join(run_dir, f"{which}.weights.h5")
    target = os.path.join(directory, f"{name}.weights.h5")
    metrics = []
    placeholder = dataset.upper().replace("-", "_") + "_DIR"
    for split_data, label, shown in ((data, f"{dataset} test split", placeholder), (SAMPLE_DIR, SAMPLE_NAME, SAMPLE_NAME)):
        result = evaluate(run["model"], source, split_data, split="test")
        metrics.append(dict(data=label, images=result["images"], top1_error=round(result["top1_error"], 6),
                            command=f"keras-wrn evaluate {run['model']} --weights {name} --data {shown}"))
    metrics[0]["data_dir"] = f"{placeholder}: the directory holding test/<class>/ of {dataset}"
    builder, arguments = model_args(run["model"])
    arguments = dict(arguments, classes=len(run["class_names"]), input_shape=list(image_shape))
    model = create_model(run["model"], classes=arguments["classes"], input_shape=tuple(image_shape),
                         compile=False)
    model.load_weights(source)
    _atomic_write(target, lambda temporary: shutil.copyfile(source, temporary))
    seconds = state.get("epoch_seconds")
    entry = dict(
        name=name, model=run["model"], builder=builder.__name__, arguments=arguments,
        file=os.path.basename(target), sha256=sha256_file(target), size=os.path.getsize(target),
        dataset=dataset, class_names=run["class_names"],
        preprocessing=dict(input_shape=list(image_shape), scale="0-255 RGB", mean=run["mean"], std=run["std"],
                           normalization="(x - mean) / std per channel"),
        metrics=metrics,
        training=dict(recipe=run["recipe"], epochs=run["epochs"], batch_size=run["batch_size"], seed=run["seed"],
                      dropout=run["dropout"], weights=which, best_epoch=state.get("best_epoch"),
                      wall_time=wall_time or (f"{sum(seconds) / 60:.1f} min of training epochs" if seconds else None),
                      machine=TRAINING_MACHINE),
        parameters=model.count_params(),
        provenance=dict(command=training_command or run.get("command"), commit=training_commit or run.get("commit"),
                        released_with=source_commit()),
        default=bool(default),
    )
    if default:
        for other in entries.values():
            if other["model"] == entry["model"]:
                other["default"] = False
    entries[name] = entry
    _write_manifest(entries, directory)
    return entry
