"""The run directory: what a run is, its commit point, and everything it writes per epoch.

A run directory holds::

    run.json                 what the run is (model, recipe, epochs, data, seed, normalisation)
    state.json               the commit point: last completed epoch, history, best epoch
    checkpoint-EPOCH.weights.h5  model + optimizer state (iterations = schedule position)
    last.weights.h5, best.weights.h5
    zca.npz                  ZCA runs only: the whitening (see `keras_wrn.training.normalization`)
    log.csv, curves.png, tensorboard/

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

import csv
import os

import numpy as np

from keras_wrn.io import atomic_write, read_json, write_json

__all__ = [
    "COMMIT_STAGES",
    "RESUME_KEYS",
    "check_resume",
    "commit_epoch",
    "epoch_seed",
    "has_run",
    "initial_state",
    "plot_curves",
    "read_run_beside",
    "read_state",
    "restore_seed_states",
    "seed_states",
    "write_log",
    "write_run",
]

RUN_FILE = "run.json"
STATE_FILE = "state.json"

# run.json fields that must agree for --resume to continue a run.
RESUME_KEYS = ("model", "recipe", "epochs", "batch_size", "seed", "dropout", "class_names", "limit_train",
               "normalization", "init_weights", "freeze_backbone", "image_shape", "learning_rate", "weight_decay",
               "val_fraction", "data_fingerprint")

# Where `commit_epoch` calls its ``on_commit`` hook, in order:
#   "weights-written": best/checkpoint/last weights are on disk, state.json still names the previous epoch;
#   "state-committed": state.json names this epoch (the commit point has passed);
#   "logs-written": the previous checkpoint is removed, log.csv and curves.png are rewritten.
COMMIT_STAGES = ("weights-written", "state-committed", "logs-written")


def has_run(out_dir):
    """Whether ``out_dir`` already holds a run (its ``run.json``)."""
    return os.path.exists(os.path.join(out_dir, RUN_FILE))


def write_run(run_dir, config):
    """``run.json``: written once, when a run starts."""
    write_json(os.path.join(run_dir, RUN_FILE), config)


def check_resume(out_dir, expected):
    """The stored ``run.json`` of ``out_dir``, after checking it agrees with ``expected`` on `RESUME_KEYS`."""
    path = os.path.join(out_dir, RUN_FILE)
    stored = read_json(path, "run description")
    for key in RESUME_KEYS:
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
    return read_json(path, "run description")


def initial_state():
    """``state.json``'s content before the first epoch is committed."""
    return {"completed_epochs": 0, "history": [], "best_epoch": None, "best_val_accuracy": None,
            "checkpoint": None}


def read_state(out_dir):
    """The committed ``state.json`` of ``out_dir``, or None if no epoch was committed yet."""
    path = os.path.join(out_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    return read_json(path, "run state")


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


def commit_epoch(run_dir, model, state, row, seconds, on_commit=None):
    """Record a finished epoch in ``state`` and commit it to ``run_dir`` (see the module doc).

    Args:
        state: the run's state (updated in place): ``row`` is appended to its
            history, best epoch and checkpoint name are advanced.
        row: the epoch's log row (``epoch``, ``learning_rate`` and Keras' metrics).
        seconds: the epoch's wall time, kept in state.json only so that a
            resumed run's log.csv stays identical.
        on_commit: optional ``on_commit(stage, epoch)``, called at each of
            `COMMIT_STAGES` (tests use it to kill a run at a known point).
    """
    epoch = row["epoch"]
    state["history"].append(row)
    state.setdefault("epoch_seconds", []).append(round(seconds, 1))
    state["completed_epochs"] = epoch
    if state["best_val_accuracy"] is None or row["val_accuracy"] > state["best_val_accuracy"]:
        state["best_val_accuracy"], state["best_epoch"] = row["val_accuracy"], epoch
        atomic_write(os.path.join(run_dir, "best.weights.h5"), model.save_weights)
    state["seed_states"] = seed_states(model)
    state["checkpoint"] = f"checkpoint-{epoch}.weights.h5"
    atomic_write(os.path.join(run_dir, state["checkpoint"]), model.save_weights)
    atomic_write(os.path.join(run_dir, "last.weights.h5"), model.save_weights)
    _notify(on_commit, "weights-written", epoch)
    write_json(os.path.join(run_dir, STATE_FILE), state)  # the commit point
    _notify(on_commit, "state-committed", epoch)
    # Every older checkpoint goes, also one a killed process left behind after its commit.
    for name in os.listdir(run_dir):
        if name.startswith("checkpoint-") and name.endswith(".weights.h5") and name != state["checkpoint"]:
            os.remove(os.path.join(run_dir, name))
    write_log(os.path.join(run_dir, "log.csv"), state["history"])
    plot_curves(os.path.join(run_dir, "curves.png"), state["history"])
    _notify(on_commit, "logs-written", epoch)


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
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        loss_axis.plot(epochs, [row[key] for row in history], marker="o", label=label)
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        accuracy_axis.plot(epochs, [row[key] for row in history], marker="o", label=label)
    loss_axis.set(xlabel="epoch", ylabel="loss", title="loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))
    plt.close(figure)
