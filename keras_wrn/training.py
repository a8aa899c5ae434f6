"""Resumable training with the papers' recipes (``keras-wrn train``) and evaluation.

A run directory holds::

    run.json                 what the run is (model, recipe, epochs, data, seed, normalisation)
    state.json               the commit point: last completed epoch, history, best epoch
    checkpoint-EPOCH.weights.h5  model + optimizer state (iterations = schedule position)
    last.weights.h5, best.weights.h5
    log.csv, curves.png, tensorboard/

Training runs one `model.fit` call per epoch on a dataset whose shuffle and
augmentation seeds are derived from ``(seed, epoch)``, so an epoch's batches
do not depend on how many epochs this process has already run.  After each
epoch every file is written to a temporary name and renamed into place, and
``state.json`` is replaced last: a run killed at any moment (even during a
save) resumes with ``--resume`` from its last completed epoch and reaches the
same weights as an uninterrupted run.  Keras' `BackupAndRestore` is not used:
it writes its backup in place (not atomically) and cannot re-seed the input
pipeline per epoch.
"""

import csv
import json
import os
import tempfile

import numpy as np

from keras_wrn.recipes import get_recipe, learning_rate_schedule

__all__ = ["train", "evaluate", "load_data", "RUN_FILES"]

RUN_FILES = ("run.json", "state.json", "last.weights.h5", "best.weights.h5")


def _atomic_write(path, write):
    """Call ``write(temporary_path)`` then rename onto ``path`` (same directory)."""
    directory = os.path.dirname(os.path.abspath(path))
    suffix = ".weights.h5" if path.endswith(".weights.h5") else os.path.splitext(path)[1]
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb+") as stream:
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _write_json(path, content):
    def write(temporary):
        with open(temporary, "w", encoding="utf-8") as stream:
            json.dump(content, stream, indent=2, sort_keys=True)

    _atomic_write(path, write)


def load_data(data):
    """Train and test arrays from a CIFAR batch directory or an image-folder tree.

    ``data`` may be (or contain) ``cifar-10-batches-py`` / ``cifar-100-python``,
    or hold ``train/<class>/`` and ``test/<class>/`` image folders (such as the
    extracted cifar10-jpeg archive).

    Returns:
        dict with ``x_train, y_train, x_test, y_test, class_names, format``.
    """
    from keras_wrn.data import load_cifar, load_image_folder
    from keras_wrn.data.cifar import CIFAR_LAYOUT

    data = os.fspath(data)
    if not os.path.isdir(data):
        raise ValueError(f"--data {data!r} is not a directory.")
    for dataset, (dirname, _, _, classes) in CIFAR_LAYOUT.items():
        if os.path.basename(os.path.normpath(data)) == dirname or os.path.isdir(os.path.join(data, dirname)):
            x_train, y_train = load_cifar(dataset, "train", data)
            x_test, y_test = load_cifar(dataset, "test", data)
            names = [str(i) for i in range(classes)]
            return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                        class_names=names, format=dataset)
    train_dir, test_dir = os.path.join(data, "train"), os.path.join(data, "test")
    if os.path.isdir(train_dir) and os.path.isdir(test_dir):
        x_train, y_train, names = load_image_folder(train_dir)
        x_test, y_test, _ = load_image_folder(test_dir, class_names=names)
        return dict(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                    class_names=names, format="image-folder")
    raise ValueError(
        f"--data {data!r}: expected cifar-10-batches-py/ or cifar-100-python/ (the official python "
        "batches), or train/<class>/ and test/<class>/ image folders."
    )


def _seed_states(model):
    """Dropout's random-stream positions: Keras keeps them out of weight files."""
    return {v.path: np.asarray(v.numpy()).tolist() for v in model.variables if "seed_generator_state" in v.path}


def _restore_seed_states(model, states):
    for variable in model.variables:
        if variable.path in states:
            variable.assign(np.asarray(states[variable.path], dtype=variable.dtype))


def _epoch_seed(seed, epoch):
    return int(seed) * 100_003 + int(epoch)


def _plot_curves(path, history):
    import matplotlib

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
    _atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))
    plt.close(figure)


def _write_csv(path, history):
    def write(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            first = ["epoch", "learning_rate"]
            fields = first + sorted(key for key in history[0] if key not in first)
            writer = csv.DictWriter(stream, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)

    _atomic_write(path, write)


def _run_config(model_name, data, recipe, epochs, batch_size, seed, dropout, mean, std, class_names, limit):
    return dict(model=model_name, data=os.path.abspath(data), recipe=recipe.name, epochs=epochs,
                batch_size=batch_size, seed=seed, dropout=dropout, mean=mean, std=std,
                class_names=class_names, limit_train=limit)


def _check_resume(out_dir, expected):
    with open(os.path.join(out_dir, "run.json"), encoding="utf-8") as stream:
        stored = json.load(stream)
    for key in ("model", "recipe", "epochs", "batch_size", "seed", "dropout", "class_names", "limit_train"):
        if stored.get(key) != expected.get(key):
            raise ValueError(
                f"--resume: {os.path.join(out_dir, 'run.json')} is a run of {key}={stored.get(key)!r}, "
                f"but this command asks for {key}={expected.get(key)!r}; use another --out or the same arguments."
            )
    return stored


def train(model_name, data, out_dir, recipe="wrn", epochs=None, batch_size=None, seed=0, resume=False,
          dropout=None, limit_train=None, verbose=1):
    """Train ``model_name`` (a registry name) on ``data`` into ``out_dir``; see the module doc.

    Args:
        recipe: a name from `keras_wrn.recipes.RECIPES`; ``epochs`` scales its schedule.
        batch_size: defaults to the recipe's (128).
        resume: continue the run in ``out_dir`` from its last completed epoch.
            Without it, an ``out_dir`` that already holds a run is refused (never overwritten).
        limit_train: use only the first N training images (quick runs and tests).

    Returns:
        The list of per-epoch history rows (dicts).
    """
    import keras

    from keras_wrn.data import make_dataset
    from keras_wrn.optimizers import CoupledWeightDecaySGD
    from keras_wrn.registry import create_model, model_args

    recipe = get_recipe(recipe)
    model_args(model_name)  # unknown names fail before any data is read
    epochs = recipe.epochs if epochs is None else epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"--epochs {epochs!r}: expected an integer >= 1.")
    batch_size = batch_size or recipe.batch_size
    out_dir = os.fspath(out_dir)
    has_run = os.path.exists(os.path.join(out_dir, "run.json"))
    if has_run and not resume:
        raise ValueError(f"--out {out_dir!r} already holds a run (run.json); pass --resume or choose another --out.")
    if resume and not has_run:
        raise ValueError(f"--resume: {out_dir!r} holds no run (no run.json) to resume.")

    arrays = load_data(data)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    if limit_train:
        x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    mean = [round(float(v), 4) for v in x_train.reshape(-1, 3).mean(axis=0)]
    std = [round(float(v), 4) for v in x_train.reshape(-1, 3).std(axis=0)]
    config = _run_config(model_name, data, recipe, epochs, batch_size, seed, dropout, mean, std,
                         arrays["class_names"], limit_train)
    if resume:
        config = _check_resume(out_dir, config)
    os.makedirs(out_dir, exist_ok=True)

    keras.utils.set_random_seed(seed)
    kwargs = {"dropout": dropout} if dropout is not None else {}
    model = create_model(model_name, classes=len(arrays["class_names"]), compile=False, **kwargs)
    steps_per_epoch = -(-len(x_train) // batch_size)

    schedule = learning_rate_schedule(recipe, steps_per_epoch, epochs)
    optimizer = CoupledWeightDecaySGD(
        learning_rate=schedule,
        momentum=recipe.momentum, nesterov=recipe.nesterov, l2=recipe.weight_decay,
    )
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=["accuracy"])
    model.build((None,) + x_train.shape[1:])
    optimizer.build(model.trainable_variables)

    state = {"completed_epochs": 0, "history": [], "best_epoch": None, "best_val_accuracy": None,
             "checkpoint": None}
    if resume and os.path.exists(os.path.join(out_dir, "state.json")):
        with open(os.path.join(out_dir, "state.json"), encoding="utf-8") as stream:
            state = json.load(stream)
        model.load_weights(os.path.join(out_dir, state["checkpoint"]))
        _restore_seed_states(model, state["seed_states"])
    else:
        _write_json(os.path.join(out_dir, "run.json"), config)

    test = make_dataset(arrays["x_test"], arrays["y_test"], 500, config["mean"], config["std"])
    tensorboard = keras.callbacks.TensorBoard(os.path.join(out_dir, "tensorboard"), write_graph=False)
    for epoch in range(state["completed_epochs"], epochs):
        train_set = make_dataset(x_train, y_train, batch_size, config["mean"], config["std"],
                                 recipe.augmentation, shuffle=True, seed=_epoch_seed(seed, epoch))
        result = model.fit(train_set, validation_data=test, initial_epoch=epoch, epochs=epoch + 1,
                           callbacks=[tensorboard], shuffle=False, verbose=verbose)
        row = {"epoch": epoch + 1,
               "learning_rate": float(keras.ops.convert_to_numpy(schedule(epoch * steps_per_epoch)))}
        row.update({key: float(values[-1]) for key, values in result.history.items()})
        state["history"].append(row)
        state["completed_epochs"] = epoch + 1
        if state["best_val_accuracy"] is None or row["val_accuracy"] > state["best_val_accuracy"]:
            state["best_val_accuracy"], state["best_epoch"] = row["val_accuracy"], epoch + 1
            _atomic_write(os.path.join(out_dir, "best.weights.h5"), model.save_weights)
        state["seed_states"] = _seed_states(model)
        previous, state["checkpoint"] = state["checkpoint"], f"checkpoint-{epoch + 1}.weights.h5"
        _atomic_write(os.path.join(out_dir, state["checkpoint"]), model.save_weights)
        _atomic_write(os.path.join(out_dir, "last.weights.h5"), model.save_weights)
        _write_json(os.path.join(out_dir, "state.json"), state)  # the commit point
        if previous and os.path.exists(os.path.join(out_dir, previous)):
            os.remove(os.path.join(out_dir, previous))
        _write_csv(os.path.join(out_dir, "log.csv"), state["history"])
        _plot_curves(os.path.join(out_dir, "curves.png"), state["history"])
    return state["history"]
