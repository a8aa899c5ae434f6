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

import contextlib
import csv
import json
import os
import shutil
import tempfile
import time

import numpy as np

from keras_wrn.recipes import get_recipe, learning_rate_schedule

__all__ = ["train", "evaluate", "load_data", "make_strategy", "use_cpu_devices", "RUN_FILES", "DISTRIBUTE"]

DISTRIBUTE = ("none", "mirrored", "multi-worker")
NORMALIZATIONS = ("meanstd", "zca")

RUN_FILES = ("run.json", "state.json", "last.weights.h5", "best.weights.h5")


def _atomic_write(path, write):
    """Call ``write(temporary_path)`` then rename onto ``path`` (same directory)."""
    path = os.fspath(path)
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


def load_data(data, splits=("train", "test"), image_size=None):
    """Arrays of the requested splits from a CIFAR batch directory or an image-folder tree.

    ``data`` may be (or contain) ``cifar-10-batches-py`` / ``cifar-100-python``,
    or hold ``train/<class>/`` and ``test/<class>/`` image folders (such as the
    extracted cifar10-jpeg archive), images resized to ``image_size`` (default 32x32).

    Returns:
        dict with ``x_<split>, y_<split>`` per split, ``class_names`` and ``format``.
    """
    from keras_wrn.data import load_cifar, load_image_folder
    from keras_wrn.data.cifar import CIFAR_LAYOUT, cifar_class_names

    from keras_wrn.weights import SAMPLE_DIR, SAMPLE_NAME

    data = os.fspath(data)
    if data == SAMPLE_NAME and not os.path.isdir(data):
        data = SAMPLE_DIR  # the bundled offline sample
    if not os.path.isdir(data):
        raise ValueError(f"--data {data!r} is not a directory.")
    result = {}
    for dataset, (dirname, _, _, _) in CIFAR_LAYOUT.items():
        if os.path.basename(os.path.normpath(data)) == dirname or os.path.isdir(os.path.join(data, dirname)):
            for split in splits:
                result[f"x_{split}"], result[f"y_{split}"] = load_cifar(dataset, split, data)
            return dict(result, class_names=cifar_class_names(dataset, data), format=dataset)
    folders = {split: os.path.join(data, split) for split in splits}
    if all(os.path.isdir(folder) for folder in folders.values()):
        names = None
        for split, folder in folders.items():
            size = tuple(image_size) if image_size else (32, 32)
            result[f"x_{split}"], result[f"y_{split}"], names = load_image_folder(folder, size, class_names=names)
        return dict(result, class_names=names, format="image-folder")
    raise ValueError(
        f"--data {data!r}: expected cifar-10-batches-py/ or cifar-100-python/ (the official python "
        f"batches), or {', '.join(split + '/<class>/' for split in splits)} image folders."
    )


def make_strategy(distribute=None):
    """The `tf.distribute` strategy for ``distribute`` (None for the default one).

    - ``None`` / ``"none"``: the default strategy (one device).
    - ``"mirrored"``: `MirroredStrategy` over the local GPUs, else over the
      logical CPU devices (see `use_cpu_devices`).
    - ``"multi-worker"``: `MultiWorkerMirroredStrategy`; the cluster comes from
      the ``TF_CONFIG`` environment variable.
    """
    import tensorflow as tf

    if distribute in (None, "none"):
        return None
    if distribute == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if distribute == "multi-worker":
        if not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "--distribute multi-worker: the TF_CONFIG environment variable is not set; expected "
                '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"--distribute {distribute!r} is not allowed; expected one of {list(DISTRIBUTE)}.")


def use_cpu_devices(count):
    """Split the CPU into ``count`` logical devices (call before TensorFlow starts its runtime)."""
    import tensorflow as tf

    if not isinstance(count, int) or count < 1:
        raise ValueError(f"--cpu-devices {count!r}: expected an integer >= 1.")
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as error:
        raise ValueError(f"--cpu-devices: TensorFlow has already started ({error}).") from None


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


def _check_resume(out_dir, expected):
    with open(os.path.join(out_dir, "run.json"), encoding="utf-8") as stream:
        stored = json.load(stream)
    for key in RESUME_KEYS:
        # Runs written before a field existed are compared on the fields they have.
        if key in stored and stored[key] != expected.get(key):
            raise ValueError(
                f"--resume: {os.path.join(out_dir, 'run.json')} is a run of {key}={stored.get(key)!r}, "
                f"but this command asks for {key}={expected.get(key)!r}; use another --out or the same arguments."
            )
    return stored


# run.json fields that must agree for --resume to continue a run.
RESUME_KEYS = ("model", "recipe", "epochs", "batch_size", "seed", "dropout", "class_names", "limit_train",
               "normalization", "init_weights", "freeze_backbone", "image_shape")


def _normalise(config, out_dir, x_train, write):
    """Per-channel mean/std (stored in ``config``) or ZCA (``zca.npz`` in the run)."""
    if config["normalization"] == "meanstd":
        flat = x_train.reshape(-1, x_train.shape[-1])
        config.setdefault("mean", [round(float(v), 4) for v in flat.mean(axis=0)])
        config.setdefault("std", [round(float(v), 4) for v in flat.std(axis=0)])
        return None
    from keras_wrn.data.whitening import fit_zca

    path = os.path.join(out_dir, "zca.npz")
    if os.path.exists(path):
        with np.load(path, allow_pickle=False) as stored:
            return stored["mean"], stored["matrix"]
    if x_train is None:
        raise ValueError(f"{path}: missing; a ZCA run keeps its whitening there.")
    mean, matrix = fit_zca(x_train)
    if write:
        _atomic_write(path, lambda temporary: np.savez(temporary, mean=mean, matrix=matrix))
    return mean, matrix


def _pipeline(images, labels, batch_size, config, zca, augmentation="none", shuffle=False, seed=0):
    from keras_wrn.data import make_dataset
    from keras_wrn.data.whitening import apply_zca

    if zca is None:
        return make_dataset(images, labels, batch_size, config["mean"], config["std"], augmentation, shuffle, seed,
                            reshuffle_each_iteration=False)
    channels = images.shape[-1]
    return make_dataset(apply_zca(images, *zca), labels, batch_size, (0.0,) * channels, (1.0,) * channels,
                        augmentation, shuffle, seed, reshuffle_each_iteration=False)


def outputs_logits(model):
    """Whether ``model`` ends in logits (ResNet-26, converted PyTorch heads) rather than a softmax."""
    import keras

    activation = getattr(model.layers[-1], "activation", None)
    return activation is not keras.activations.softmax


def _build_for_run(model_name, classes, input_shape, dropout):
    from keras_wrn.registry import create_model

    kwargs = {"dropout": dropout} if dropout is not None else {}
    return create_model(model_name, classes=classes, input_shape=input_shape, compile=False, **kwargs)


def _patch_multi_worker_fit(model, strategy):
    """Work around keras-team/keras#20585 (open for Keras 3.x with TF 2.16+).

    Keras 3's TF trainer breaks in two places under `MultiWorkerMirroredStrategy`:

    1. before training it builds the model symbolically from one batch and
       first reduces the per-replica batch with an eager cross-worker "MEAN",
       which TensorFlow refuses ("Attempt to convert a value (PerReplica...)");
       only the batch's shapes matter, so the local replica's part is used;
    2. each step's metric results (scalars) are reduced with
       ``strategy.reduce("MEAN", v, axis=0)``, invalid for a scalar; they are
       averaged over the replicas with ``axis=None`` instead.

    A test runs two workers on 127.0.0.1 and compares with one device, so a
    Keras release that changes these internals is noticed.
    """
    import tensorflow as tf
    from keras import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original_reduce = getattr(tf_trainer.reduce_per_replica, "original", tf_trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy_, reduction):
        if reduction not in ("auto", "mean") or not isinstance(strategy_, tf.distribute.MultiWorkerMirroredStrategy):
            return original_reduce(values, strategy_, reduction)

        def reduce(value):
            local = strategy_.experimental_local_results(value)[0] if isinstance(
                value, tf.distribute.DistributedValues) else value
            if getattr(local, "shape", None) is not None and local.shape.rank == 0:
                return strategy_.reduce("MEAN", value, axis=None)
            return original_reduce(value, strategy_, reduction)

        return tree.map_structure(reduce, values)

    reduce_per_replica.original = original_reduce
    tf_trainer.reduce_per_replica = reduce_per_replica

    def local_part(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tree.map_structure(local_part, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = maybe_symbolic_build


def _is_chief(strategy):
    return strategy is None or strategy.extended.should_checkpoint


def train(model_name, data, out_dir, recipe="wrn", epochs=None, batch_size=None, seed=0, resume=False,
          dropout=None, limit_train=None, verbose=1, *, init_weights=None, freeze_backbone=False,
          normalization="meanstd", image_size=None, distribute=None, command=None):
    """Train ``model_name`` (a registry name) on ``data`` into ``out_dir``; see the module doc.

    Args:
        recipe: a name from `keras_wrn.recipes.RECIPES`; ``epochs`` scales its schedule.
        batch_size: the global batch; defaults to the recipe's (128).
        resume: continue the run in ``out_dir`` from its last completed epoch.
            Without it, an ``out_dir`` that already holds a run is refused (never overwritten).
        limit_train: use only the first N training images (quick runs and tests).
        init_weights: fine-tuning: a ``.weights.h5`` of the same architecture
            (any classifier width); its backbone is loaded, the head is new.
        freeze_backbone: train only the new head (frozen BatchNorms run in
            inference mode, as Keras does for ``trainable=False``).
        normalization: ``"meanstd"`` (per channel, from the training images) or
            ``"zca"`` (whitening as in WRN v1, stored as ``zca.npz`` in the run).
        image_size: ``(H, W)`` image folders are resized to (default 32x32).
        distribute: ``None``, ``"mirrored"`` or ``"multi-worker"`` (see `make_strategy`).
            With more than one replica, BatchNorm statistics are synchronised
            across replicas so a step equals a single-device step on the same
            global batch; only the chief worker writes ``out_dir``.
        command: the command line to record in ``run.json`` (provenance).

    Returns:
        The list of per-epoch history rows (dicts).
    """
    import keras
    import tensorflow as tf

    from keras_wrn.optimizers import CoupledWeightDecaySGD
    from keras_wrn.registry import model_args
    from keras_wrn.weights import HEAD_LAYERS, load_backbone, source_commit

    recipe = get_recipe(recipe)
    model_args(model_name)  # unknown names fail before any data is read
    epochs = recipe.epochs if epochs is None else epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"--epochs {epochs!r}: expected an integer >= 1.")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"--normalization {normalization!r} is not allowed; expected one of {list(NORMALIZATIONS)}.")
    if freeze_backbone and not init_weights:
        raise ValueError("--freeze-backbone needs --weights (the backbone to freeze).")
    if init_weights is not None:
        init_weights = os.path.abspath(os.fspath(init_weights))
        if not os.path.isfile(init_weights):
            raise FileNotFoundError(f"--weights {init_weights!r}: no such file.")
    batch_size = batch_size or recipe.batch_size
    strategy = make_strategy(distribute)
    chief = _is_chief(strategy)
    out_dir = os.fspath(out_dir)
    has_run = os.path.exists(os.path.join(out_dir, "run.json"))
    if chief and has_run and not resume:
        raise ValueError(f"--out {out_dir!r} already holds a run (run.json); pass --resume or choose another --out.")
    if resume and not has_run:
        raise ValueError(f"--resume: {out_dir!r} holds no run (no run.json) to resume.")
    # Only the chief writes the run; other workers write to a scratch directory.
    write_dir = out_dir if chief else tempfile.mkdtemp(prefix="keras-wrn-worker-")

    arrays = load_data(data, image_size=image_size)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    if limit_train:
        x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    config = dict(model=model_name, data=os.path.abspath(data), recipe=recipe.name, epochs=epochs,
                  batch_size=batch_size, seed=seed, dropout=dropout, class_names=arrays["class_names"],
                  limit_train=limit_train, normalization=normalization, init_weights=init_weights,
                  freeze_backbone=bool(freeze_backbone), image_shape=list(x_train.shape[1:]),
                  distribute=distribute or "none", command=command, commit=source_commit(),
                  started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if resume:
        config = _check_resume(out_dir, config)
    os.makedirs(write_dir, exist_ok=True)
    zca = _normalise(config, out_dir if resume else write_dir, x_train, write=True)

    keras.utils.set_random_seed(seed)
    scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
    with scope:
        model = _build_for_run(model_name, len(arrays["class_names"]), x_train.shape[1:], dropout)
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            _patch_multi_worker_fit(model, strategy)
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            for layer in model.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        if init_weights and not resume:
            load_backbone(model, init_weights, lambda classes: _build_for_run(
                model_name, classes, x_train.shape[1:], dropout) if classes else
                _build_headless(model_name, x_train.shape[1:]))
        if freeze_backbone:
            for layer in model.layers:
                layer.trainable = layer.name in HEAD_LAYERS
        steps_per_epoch = -(-len(x_train) // batch_size)
        schedule = learning_rate_schedule(recipe, steps_per_epoch, epochs)
        optimizer = CoupledWeightDecaySGD(
            learning_rate=schedule,
            momentum=recipe.momentum, nesterov=recipe.nesterov, l2=recipe.weight_decay,
        )
        model.compile(optimizer=optimizer, metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=outputs_logits(model)))
        model.build((None,) + x_train.shape[1:])
        optimizer.build(model.trainable_variables)

        state = {"completed_epochs": 0, "history": [], "best_epoch": None, "best_val_accuracy": None,
                 "checkpoint": None}
        if resume and os.path.exists(os.path.join(out_dir, "state.json")):
            with open(os.path.join(out_dir, "state.json"), encoding="utf-8") as stream:
                state = json.load(stream)
            model.load_weights(os.path.join(out_dir, state["checkpoint"]))
            _restore_seed_states(model, state["seed_states"])
        elif not resume:
            _write_json(os.path.join(write_dir, "run.json"), config)

        # fit runs inside the scope: MultiWorkerMirroredStrategy needs it to distribute the data.
        test = _pipeline(arrays["x_test"], arrays["y_test"], 500, config, zca)
        tensorboard = keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard"), write_graph=False)
        for epoch in range(state["completed_epochs"], epochs):
            started = time.perf_counter()
            if verbose and chief:  # Keras' own line reads "Epoch k/k": one fit call per epoch
                print(f"epoch {epoch + 1}/{epochs}, learning rate "
                      f"{float(keras.ops.convert_to_numpy(schedule(epoch * steps_per_epoch))):g}", flush=True)
            train_set = _pipeline(x_train, y_train, batch_size, config, zca, recipe.augmentation,
                                  shuffle=True, seed=_epoch_seed(seed, epoch))
            result = model.fit(train_set, validation_data=test, initial_epoch=epoch, epochs=epoch + 1,
                               callbacks=[tensorboard], shuffle=False, verbose=verbose)
            row = {"epoch": epoch + 1,
                   "learning_rate": float(keras.ops.convert_to_numpy(schedule(epoch * steps_per_epoch)))}
            row.update({key: float(values[-1]) for key, values in result.history.items()})
            state["history"].append(row)
            # Wall time per epoch, kept out of log.csv so a resumed run's log stays identical.
            state.setdefault("epoch_seconds", []).append(round(time.perf_counter() - started, 1))
            state["completed_epochs"] = epoch + 1
            if state["best_val_accuracy"] is None or row["val_accuracy"] > state["best_val_accuracy"]:
                state["best_val_accuracy"], state["best_epoch"] = row["val_accuracy"], epoch + 1
                _atomic_write(os.path.join(write_dir, "best.weights.h5"), model.save_weights)
            state["seed_states"] = _seed_states(model)
            previous, state["checkpoint"] = state["checkpoint"], f"checkpoint-{epoch + 1}.weights.h5"
            _atomic_write(os.path.join(write_dir, state["checkpoint"]), model.save_weights)
            _atomic_write(os.path.join(write_dir, "last.weights.h5"), model.save_weights)
            _write_json(os.path.join(write_dir, "state.json"), state)  # the commit point
            if previous and os.path.exists(os.path.join(write_dir, previous)):
                os.remove(os.path.join(write_dir, previous))
            _write_csv(os.path.join(write_dir, "log.csv"), state["history"])
            _plot_curves(os.path.join(write_dir, "curves.png"), state["history"])
    if not chief:
        shutil.rmtree(write_dir, ignore_errors=True)
    return state["history"]


def _build_headless(model_name, input_shape):
    from keras_wrn.registry import create_model

    return create_model(model_name, include_top=False, input_shape=input_shape, compile=False)


def _run_beside(weights):
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), "run.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


def _plot_confusion(path, matrix, class_names, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5.0, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    display = ConfusionMatrixDisplay(matrix, display_labels=class_names)
    display.plot(ax=axis, cmap="Blues", colorbar=False, xticks_rotation="vertical",
                 include_values=len(class_names) <= 20, values_format="d")
    axis.set_title(title)
    figure.tight_layout()
    _atomic_write(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))
    plt.close(figure)


def evaluate(model_name, weights, data, split="test", batch_size=500, confusion_png=None, image_size=None,
             limit=None):
    """Top-1 error of ``weights`` on a split of ``data``, and its confusion matrix.

    Preprocessing: when ``weights`` lies in a run directory of `train`
    (``run.json`` beside it), that run's normalisation and class names are
    used and checked against ``model_name`` and the data; otherwise the
    per-channel mean/std of the data's training split.

    Returns:
        dict with ``top1_error`` (fraction), ``accuracy``, ``images``,
        ``per_class_accuracy``, ``confusion_matrix`` (rows: true class),
        ``class_names`` and what was evaluated.
    """
    from sklearn.metrics import confusion_matrix

    from keras_wrn.registry import model_args

    from keras_wrn.weights import is_weights_name, resolve_weights

    model_args(model_name)
    weights = os.fspath(weights)
    if is_weights_name(weights):
        weights, entry = resolve_weights(weights)
        preprocessing = entry["preprocessing"]
        run = dict(model=entry["model"], class_names=entry["class_names"], image_shape=preprocessing["input_shape"],
                   normalization="meanstd", mean=preprocessing["mean"], std=preprocessing["std"])
        origin = f"released weights {entry['name']!r}"
    elif not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights {weights!r}: no such file (nor a released weights name).")
    else:
        run, origin = _run_beside(weights), "a run of model"
    if run is not None and run.get("model") != model_name:
        raise ValueError(f"--weights {weights!r} belongs to {origin} {run.get('model')!r}, not {model_name!r}.")
    if run is not None and image_size is None and run.get("image_shape"):
        image_size = run["image_shape"][:2]
    needs_train = run is None
    arrays = load_data(data, splits=(split, "train") if needs_train and split != "train" else (split,),
                       image_size=image_size)
    names = arrays["class_names"]
    if run is not None and run.get("class_names") != names:
        raise ValueError(f"--data {data!r} has classes {names}, but {weights} was trained on {run['class_names']}.")
    config = run or {"normalization": "meanstd"}
    zca = None
    if run is None:
        flat = arrays["x_train"].reshape(-1, arrays["x_train"].shape[-1])
        config = dict(config, mean=flat.mean(axis=0).tolist(), std=flat.std(axis=0).tolist())
    elif config.get("normalization") == "zca":
        zca = _normalise(config, os.path.dirname(os.path.abspath(weights)), None, write=False)
    images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
    if limit:
        images, labels = images[:limit], labels[:limit]
    model = _build_for_run(model_name, len(names), images.shape[1:], None)
    try:
        model.load_weights(weights)
    except ValueError as error:
        raise ValueError(f"--weights {weights!r}: does not fit {model_name} with {len(names)} classes: {error}") from None
    dataset = _pipeline(images, labels, batch_size, config, zca)
    predictions = np.argmax(model.predict(dataset, verbose=0), axis=-1)
    matrix = confusion_matrix(labels, predictions, labels=list(range(len(names))))
    accuracy = float(np.trace(matrix) / max(1, matrix.sum()))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.diag(matrix) / matrix.sum(axis=1)
    result = dict(model=model_name, weights=os.path.abspath(weights), data=os.path.abspath(data), split=split,
                  images=int(len(labels)), accuracy=accuracy, top1_error=1.0 - accuracy,
                  per_class_accuracy={n: (None if np.isnan(a) else float(a)) for n, a in zip(names, per_class)},
                  confusion_matrix=matrix.tolist(), class_names=names)
    if confusion_png:
        title = f"{model_name} on {os.path.basename(os.path.normpath(data))} {split}: top-1 error {100 * (1 - accuracy):.2f}%"
        _plot_confusion(confusion_png, matrix, names, title)
        result["confusion_png"] = os.path.abspath(confusion_png)
    return result
