"""The run directory: what a run is, its commit point, and everything it writes per epoch.

A run directory holds::

    run.json                 what the run is (model, recipe, epochs, data, seed, normalisation)
    state.json               the commit point: last completed epoch, history, best epoch
    checkpoint-EPOCH.weights.h5  model + optimizer state (iterations = schedule position)
    last.weights.h5, best.weights.h5
    zca.npz                  ZCA runs only: the whitening (see `keras_wrn.training.normalization`)
    log.csv, curves.png, tensorboard/
    test.json                with a validation split (``val_fraction``): the test split, measured once at the end

The commit protocol (`commit_epoch`): after each epoch every file is written
to a temporary name and renamed into place (`keras_wrn.io.atomic_write`), and
``state.json`` is replaced after the weights it names: a run killed at any
moment (even during a save) resumes from its last committed epoch, whose
checkpoint is complete on disk, and reaches the same weights as an
uninterrupted run.  Files written after the last commit (a newer checkpoint,
``last.weights.h5``) are overwritten when the resumed run redoes that epoch.

Keras' `BackupAndRestore` is not used: it writes its backup in place (not
atomically) and cannot re-seed the input pipeline per epoch.

Keras keeps dropout's random-stream positions (``seed_generator_state``
variables) out of weight files, so ``state.json`` stores them too: a resumed
run draws the same dropout masks as an uninterrupted one.
"""

import contextlib
import csv
import errno
import os

import numpy as np

from keras_wrn.io import LOCK_FILE, atomic_write, read_json, write_json
from keras_wrn.weights import load_weights_file

__all__ = [
    "COMMIT_STAGES",
    "RESUME_KEYS",
    "RunWriteError",
    "check_out_dir",
    "check_free_space",
    "check_resume",
    "commit_epoch",
    "epoch_seed",
    "has_run",
    "initial_state",
    "load_checkpoint",
    "plot_curves",
    "read_run_beside",
    "read_state",
    "restore_seed_states",
    "seed_states",
    "selection_accuracy",
    "time_to_accuracy",
    "write_log",
    "write_run",
]

RUN_FILE = "run.json"
STATE_FILE = "state.json"

# run.json fields that must agree for --resume to continue a run.
RESUME_KEYS = ("model", "recipe", "recipe_settings", "epochs", "batch_size", "seed", "dropout", "class_names",
               "limit_train", "normalization", "init_weights", "freeze_backbone", "image_shape", "learning_rate",
               "weight_decay", "val_fraction", "data_fingerprint", "precision")

# Where `commit_epoch` calls its ``on_commit`` hook, in order:
#   "weights-written": best/checkpoint/last weights are on disk, state.json still names the previous epoch;
#   "state-committed": state.json names this epoch (the commit point has passed);
#   "logs-written": the previous checkpoint is removed, log.csv and curves.png are rewritten.
COMMIT_STAGES = ("weights-written", "state-committed", "logs-written")


def has_run(out_dir):
    """Whether ``out_dir`` already holds a run (its ``run.json``)."""
    return os.path.exists(os.path.join(out_dir, RUN_FILE))


def check_out_dir(out_dir, resume, chief=True):
    """Refuse an ``--out`` this command must not write: a run without ``--resume``, files that are no run,
    ``--resume`` of nothing.  Only the chief (the process that writes the run) checks what it would overwrite."""
    run_exists = has_run(out_dir)
    if chief and run_exists and not resume:
        raise ValueError(f"--out {out_dir!r} already holds a run (run.json); pass --resume or choose another --out.")
    others = [name for name in os.listdir(out_dir) if name != LOCK_FILE] if os.path.isdir(out_dir) else []
    if chief and not run_exists and others:
        raise ValueError(f"--out {out_dir!r} holds files but no run (no run.json); nothing there is overwritten: "
                         "choose an empty or new directory.")
    if resume and not run_exists:
        raise ValueError(f"--resume: {out_dir!r} holds no run (no run.json) to resume.")
    if resume:
        read_json(os.path.join(out_dir, RUN_FILE), "run description", expect=dict)


def write_run(run_dir, config):
    """``run.json``: written once, when a run starts."""
    write_json(os.path.join(run_dir, RUN_FILE), config)


def check_resume(out_dir, expected):
    """The stored ``run.json`` of ``out_dir``, after checking it agrees with ``expected`` on `RESUME_KEYS`."""
    path = os.path.join(out_dir, RUN_FILE)
    stored = read_json(path, "run description", expect=dict)
    for key in RESUME_KEYS:
        if key == "precision" and expected.get(key) is None:
            continue  # --resume without --precision continues at the run's precision
        # Runs written before a field existed are compared on the fields they have.
        if key in stored and stored[key] != expected.get(key):
            if key == "data_fingerprint":
                raise ValueError(
                    f"--resume: {path} is a run on other data: --data {expected.get('data')!r} does not hold the "
                    f"files the run started with ({stored.get('data')!r}; field data_fingerprint differs); use the "
                    "same --data or another --out."
                )
            raise ValueError(
                f"--resume: {path} is a run of {key}={stored.get(key)!r}, "
                f"but this command asks for {key}={expected.get(key)!r}; use another --out or the same arguments."
            )
    return stored


def read_run_beside(weights):
    """The ``run.json`` in the directory of a weights file, or None if there is none."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), RUN_FILE)
    if not os.path.isfile(path):
        return None
    return read_json(path, "run description", expect=dict)


def initial_state():
    """``state.json``'s content before the first epoch is committed."""
    return {"completed_epochs": 0, "history": [], "best_epoch": None, "best_val_accuracy": None,
            "checkpoint": None}


def read_state(out_dir):
    """The committed ``state.json`` of ``out_dir``, or None if no epoch was committed yet.

    Raises:
        ValueError: naming the file and the field, if it is not a state this module wrote
            (it is replaced atomically, so only damage from outside makes it so).
    """
    path = os.path.join(out_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    state = read_json(path, "run state", expect=dict)
    epochs = state.get("completed_epochs")
    expected = {"completed_epochs": isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0,
                "history": isinstance(state.get("history"), list) and len(state.get("history", ())) == epochs,
                "checkpoint": state.get("checkpoint") == (f"checkpoint-{epochs}.weights.h5" if epochs else None),
                "seed_states": isinstance(state.get("seed_states", {}), dict)}
    for field, valid in expected.items():
        if not valid:
            raise ValueError(f"{path}: damaged run state (field {field!r} is {state.get(field)!r}); restore the "
                             "file from a copy, or start the run again in another --out.")
    return state


def load_checkpoint(model, out_dir, state):
    """Load the committed checkpoint named by ``state`` (and dropout's stream positions) into ``model``.

    Raises:
        ValueError: naming the checkpoint, if it is missing, truncated or not this model's.
    """
    path = os.path.join(out_dir, state["checkpoint"])
    if not os.path.isfile(path):
        raise ValueError(f"--resume: {path} (epoch {state['completed_epochs']}'s checkpoint, named by state.json) "
                         "is missing; restore it, or start the run again in another --out.")
    try:
        load_weights_file(model, path, "checkpoint")
    except ValueError as error:
        raise ValueError(f"--resume: {path} (epoch {state['completed_epochs']}'s checkpoint) cannot be loaded "
                         f"({str(error)[:300]}); it is truncated or damaged: restore it from a copy, or start the run "
                         "again in another --out.") from None
    restore_seed_states(model, state.get("seed_states", {}))


def seed_states(model):
    """Dropout's random-stream positions: Keras keeps them out of weight files."""
    return {v.path: np.asarray(v.numpy()).tolist() for v in model.variables if "seed_generator_state" in v.path}


def restore_seed_states(model, states):
    """Put back the positions `seed_states` saved."""
    for variable in model.variables:
        if variable.path in states:
            variable.assign(np.asarray(states[variable.path], dtype=variable.dtype))


def epoch_seed(seed, epoch):
    """The shuffle/augmentation seed of ``epoch``: a function of the run's seed and the epoch only."""
    return int(seed) * 100_003 + int(epoch)


def selection_accuracy(row):
    """The validation accuracy of the weights a run publishes as best/last: of the weights' moving average
    (``ema_val_accuracy``) when the recipe keeps one, else of the trained weights (``val_accuracy``)."""
    return row["ema_val_accuracy"] if "ema_val_accuracy" in row else row["val_accuracy"]


def time_to_accuracy(run_dir, target):
    """Seconds of training epochs (validation included) until `selection_accuracy` first reached ``target``,
    and that epoch, from the run's ``state.json``; ``(None, None)`` if it never did."""
    state = read_state(run_dir) or initial_state()
    elapsed = 0.0
    for row, seconds in zip(state["history"], state.get("epoch_seconds", [])):
        elapsed += seconds
        if selection_accuracy(row) >= target:
            return elapsed, row["epoch"]
    return None, None


def commit_epoch(run_dir, model, state, row, seconds, on_commit=None, published_weights=None):
    """Record a finished epoch in ``state`` and commit it to ``run_dir`` (see the module doc).

    Args:
        state: the run's state (updated in place): ``row`` is appended to its
            history, best epoch and checkpoint name are advanced.
        row: the epoch's log row (``epoch``, ``learning_rate`` and Keras' metrics).
        seconds: the epoch's wall time, kept in state.json only so that a
            resumed run's log.csv stays identical.
        on_commit: optional ``on_commit(stage, epoch)``, called at each of
            `COMMIT_STAGES` (tests use it to kill a run at a known point).
        published_weights: optional context-manager factory inside which
            ``model`` holds the weights to write as best/last (the moving
            average); the checkpoint always holds the trained weights, so a
            resumed run continues from them.
    """
    epoch = row["epoch"]
    committed = state["completed_epochs"]
    try:
        check_free_space(run_dir, model, state["checkpoint"])
        state["history"].append(row)
        state.setdefault("epoch_seconds", []).append(round(seconds, 1))
        state["completed_epochs"] = epoch
        with published_weights() if published_weights is not None else contextlib.nullcontext():
            accuracy = selection_accuracy(row)
            if state["best_val_accuracy"] is None or accuracy > state["best_val_accuracy"]:
                state["best_val_accuracy"], state["best_epoch"] = accuracy, epoch
                atomic_write(os.path.join(run_dir, "best.weights.h5"), model.save_weights)
            atomic_write(os.path.join(run_dir, "last.weights.h5"), model.save_weights)
        state["seed_states"] = seed_states(model)
        state["checkpoint"] = f"checkpoint-{epoch}.weights.h5"
        atomic_write(os.path.join(run_dir, state["checkpoint"]), model.save_weights)
        _notify(on_commit, "weights-written", epoch)
        write_json(os.path.join(run_dir, STATE_FILE), state)  # the commit point
        committed = epoch
        _notify(on_commit, "state-committed", epoch)
        # Every older checkpoint goes, also one a killed process left behind after its commit.
        for name in os.listdir(run_dir):
            if name.startswith("checkpoint-") and name.endswith(".weights.h5") and name != state["checkpoint"]:
                os.remove(os.path.join(run_dir, name))
        write_log(os.path.join(run_dir, "log.csv"), state["history"])
        plot_curves(os.path.join(run_dir, "curves.png"), state["history"])
    except OSError as error:
        raise RunWriteError(run_dir, epoch, committed, error) from None
    _notify(on_commit, "logs-written", epoch)


def check_free_space(run_dir, model, previous_checkpoint=None):
    """Refuse (``OSError`` ENOSPC) an epoch commit the file system has no room for, before writing.

    A commit writes up to three weights files (best, checkpoint, last), each as
    large as the previous checkpoint (or, before the first, the model's and
    optimizer's variables plus HDF5 overhead).  Checking first matters: HDF5
    left with a half-written file on a full disk crashes the process at exit.
    """
    previous = os.path.join(run_dir, previous_checkpoint) if previous_checkpoint else None
    if previous and os.path.isfile(previous):
        file_bytes = os.path.getsize(previous)
    else:
        variables = list(model.variables) + list(getattr(model.optimizer, "variables", None) or [])
        file_bytes = int(1.2 * sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)) + (256 << 10)
    needed = 3 * file_bytes + (1 << 20)  # and a MiB for state.json, log.csv, curves.png
    status = os.statvfs(run_dir)
    free = status.f_bavail * status.f_frsize
    if free < needed:
        raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {needed / 2**20:.1f} MiB needed, "
                      f"{free / 2**20:.1f} MiB free", run_dir)


class RunWriteError(OSError):
    """Writing a run directory failed (disk full, quota, permissions); the last committed epoch is intact."""

    def __init__(self, run_dir, epoch, committed, cause):
        reason = cause.strerror if cause.strerror and len(cause.strerror) < 160 and "\n" not in cause.strerror \
            else os.strerror(cause.errno) if cause.errno else str(cause)
        where = f"epoch {committed} is the last committed one" if committed else "no epoch is committed yet"
        then = f"from epoch {committed + 1}" if committed else "from the start"
        super().__init__(cause.errno, f"--out {run_dir!r}: writing epoch {epoch} failed ({reason}); {where} and "
                         f"the run is intact: free space (or fix the cause), then --resume continues {then}.")

    def __str__(self):
        return self.strerror


def _notify(on_commit, stage, epoch):
    if on_commit is not None:
        on_commit(stage, epoch)


def write_log(path, history):
    """``log.csv``: one row per epoch, ``epoch`` and ``learning_rate`` first, then the metrics by name."""

    def write(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            first = ["epoch", "learning_rate"]
            fields = first + sorted(key for key in history[0] if key not in first)
            writer = csv.DictWriter(stream, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)

    atomic_write(path, write)


def plot_curves(path, history):
    """``curves.png``: loss and accuracy per epoch, train and validation."""
    import matplotlib  # deferred: Matplotlib, loaded only once a run writes its first plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    averaged = "validation, averaged weights"
    for axis, curves in ((loss_axis, (("loss", "train"), ("val_loss", "validation"), ("ema_val_loss", averaged))),
                         (accuracy_axis, (("accuracy", "train"), ("val_accuracy", "validation"),
                                          ("ema_val_accuracy", averaged)))):
        for key, label in curves:
            if all(key in row for row in history):
                axis.plot(epochs, [row[key] for row in history], marker="o", label=label)
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))
    plt.close(figure)
