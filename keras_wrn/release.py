"""Releasing a finished training run as named, hash-checked weights (``keras-wrn weights release``).

`release` evaluates the run's weights on the full test split of the data and on
the bundled sample, plain and with flip test-time augmentation, writes the layers'
weights (not the optimizer's state) into the releases folder and adds its manifest entry (hash, size, parameter
count, preprocessing, recipe, precision, the commands that measured each
metric, provenance: commit and machine).  `remeasure` evaluates a release again
on the data its full-split metric names and compares with the manifest
(``keras-wrn weights verify --full --data DIR``).
"""

import os
import re

from keras_wrn.data.datasets import SAMPLE_DIR, SAMPLE_NAME
from keras_wrn.io import atomic_write, locked_directory, read_json, sha256_file
from keras_wrn.provenance import machine_description, source_commit
from keras_wrn.registry import create_model, model_args
from keras_wrn.training import evaluate
from keras_wrn.weights import RELEASES_URL, load_manifest, weights_dir, weights_info, write_manifest

__all__ = ["release", "remeasure", "RELEASE_NAME", "REMEASURE_TOLERANCE"]

# How far a re-measured top-1 error may lie from the manifest's: 5 images in 10,000.  Another CPU's
# float32 kernels (AVX2 against AVX-512) sum in another order and may flip the rare near-tie.
REMEASURE_TOLERANCE = 0.0005

# MODEL.DATASET-TAG: lower-case words of letters and digits joined by single '-' or '.' (no '/', no '..').
RELEASE_NAME = re.compile(r"[a-z0-9]+(?:[.-][a-z0-9]+)*")


def release(run_dir, name, data, dataset="cifar10-jpeg", which="last", default=False, training_command=None,
            training_commit=None, wall_time=None):
    """Release a `keras_wrn.training.train` run as ``weights/<name>.weights.h5`` with its manifest entry.

    Evaluates the weights on the full test split of ``data`` and on the bundled
    sample, records hash, size, parameter count, preprocessing, recipe and
    provenance.  An existing name is refused (releases are immutable).
    """
    run_dir = os.fspath(run_dir)
    run = read_json(os.path.join(run_dir, "run.json"), "run description", expect=dict)
    state = read_json(os.path.join(run_dir, "state.json"), "run state", expect=dict)
    if which not in ("last", "best"):
        raise ValueError(f"which={which!r} is not allowed; expected 'last' or 'best'.")
    if not isinstance(name, str) or not RELEASE_NAME.fullmatch(name):
        raise ValueError(f"--name {name!r} is not a release name; expected MODEL.DATASET-TAG in lower-case letters, "
                         "digits, '-' and '.', such as wrn-16-1.cifar10-jpeg-e10 (no path separators).")
    directory = weights_dir()
    # One release at a time: the manifest is read, extended and rewritten.
    with locked_directory(directory, "the releases folder"):
        entries = load_manifest(directory)
        if name in entries or name in load_manifest():
            raise ValueError(f"weights {name!r} are already released; releases are immutable, choose another name.")
        if os.path.exists(os.path.join(directory, f"{name}.weights.h5")):
            raise ValueError(f"{os.path.join(directory, name + '.weights.h5')} exists; nothing in the releases folder "
                             "is overwritten, choose another name.")
        if state["completed_epochs"] != run["epochs"]:
            raise ValueError(f"{run_dir}: {state['completed_epochs']} of {run['epochs']} epochs done; finish it first.")
        image_shape = run.get("image_shape") or [32, 32, 3]  # runs before the field existed trained at 32x32
        source = os.path.join(run_dir, f"{which}.weights.h5")
        target = os.path.join(directory, f"{name}.weights.h5")
        metrics = []
        placeholder = dataset.upper().replace("-", "_") + "_DIR"
        for split_data, label, shown in ((data, f"{dataset} test split", placeholder), (SAMPLE_DIR, SAMPLE_NAME, SAMPLE_NAME)):
            print(f"release: evaluating {which}.weights.h5 on the {label}, plain and with flip TTA", flush=True)
            result = evaluate(run["model"], source, split_data, split="test", verbose=None, tta="flip")
            command = f"keras-wrn evaluate {run['model']} --weights {name} --data {shown}"
            metrics.append(dict(data=label, images=result["images"], top1_error=round(result["plain_top1_error"], 6),
                                command=command, tta_top1_error=round(result["top1_error"], 6),
                                tta_command=f"{command} --tta flip"))
        metrics[0]["data_dir"] = f"{placeholder}: the directory holding test/<class>/ of {dataset}"
        builder, arguments = model_args(run["model"])
        arguments = dict(arguments, classes=len(run["class_names"]), input_shape=list(image_shape))
        model = create_model(run["model"], classes=arguments["classes"], input_shape=tuple(image_shape),
                             compile=False)
        model.load_weights(source)
        # The uncompiled model writes its layers' weights only: a run's file also holds the optimizer's
        # momentum, which doubles the download and which a built optimizer of the loading model would
        # take for its own.
        atomic_write(target, model.save_weights)
        seconds = state.get("epoch_seconds")
        entry = dict(
            name=name, model=run["model"], builder=builder.__name__, arguments=arguments,
            file=os.path.basename(target), origin=RELEASES_URL + os.path.basename(target), sha256=sha256_file(target), size=os.path.getsize(target),
            dataset=dataset, class_names=run["class_names"],
            preprocessing=dict(input_shape=list(image_shape), scale="0-255 RGB", mean=run["mean"], std=run["std"],
                               normalization="(x - mean) / std per channel"),
            metrics=metrics,
            training=dict(recipe=run["recipe"], epochs=run["epochs"], batch_size=run["batch_size"], seed=run["seed"],
                          precision=run.get("precision") or "float32",
                          dropout=run["dropout"], weights=which, best_epoch=state.get("best_epoch"),
                          wall_time=wall_time or (f"{sum(seconds) / 60:.1f} min of training epochs" if seconds else None),
                          machine=run.get("machine") or f"{machine_description()} (where it was released; the run "
                          "did not record its own)"),
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
        write_manifest(entries, directory)
    return entry


def remeasure(name, data):
    """Evaluate release ``name`` on ``data`` as its full-split metric's recorded commands do, plain and (where the
    manifest has it) with flip TTA; compare with the manifest.

    Returns:
        list of dicts ``{what, recorded, measured, ok}``, ``ok`` when within `REMEASURE_TOLERANCE`.
    """
    entry = weights_info(name)
    full = entry["metrics"][0]
    result = evaluate(entry["model"], name, data, split="test", verbose=None,
                      tta="flip" if "tta_top1_error" in full else "none")
    if result["images"] != full["images"]:
        raise ValueError(f"--data {data!r}: its test split has {result['images']:,} images, the release's full-split "
                         f"metric ({full['data']}) has {full['images']:,}; pass the directory it names "
                         f"({full.get('data_dir', full['data'])}).")
    measured = {"top1_error": result.get("plain_top1_error", result["top1_error"])}
    if "tta_top1_error" in full:
        measured["tta_top1_error"] = result["top1_error"]
    return [dict(what=f"{full['data']} {key}", recorded=full[key], measured=round(value, 6),
                 ok=abs(value - full[key]) <= REMEASURE_TOLERANCE) for key, value in measured.items()]
