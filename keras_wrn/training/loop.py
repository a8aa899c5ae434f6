"""The training loop: `train` a registry model with one of the papers' recipes into a run directory.

Training runs one ``model.fit`` call per epoch on a dataset whose shuffle and
augmentation seeds are derived from ``(seed, epoch)``, so an epoch's batches
do not depend on how many epochs this process has already run; each epoch is
then committed to the run directory (`keras_wrn.training.rundir`).  Together
they make ``resume=True`` continue a killed run to the same weights, bit for
bit, as an uninterrupted one.
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time

import keras

from keras_wrn.data import load_data
from keras_wrn.data.datasets import data_fingerprint, has_split
from keras_wrn.losses import recipe_loss
from keras_wrn.optimizers import CoupledWeightDecaySGD, validate_l2
from keras_wrn.precision import resolve_precision
from keras_wrn.provenance import machine_description, source_commit
from keras_wrn.recipes import get_recipe, learning_rate_schedule
from keras_wrn.registry import create_model, model_args
from keras_wrn.training import rundir
from keras_wrn.training.distribute import (
    is_chief,
    make_strategy,
    multi_worker_fit_workaround,
    synchronize_batch_norm,
)
from keras_wrn.training.normalization import check_normalization, normalise, pipeline
from keras_wrn.training.progress import keras_verbose, progress_callbacks
from keras_wrn.io import locked_directory, remove_temporaries, write_json
from keras_wrn.weights import HEAD_LAYERS, is_weights_name, load_backbone, resolve_weights

__all__ = ["build_for_run", "outputs_logits", "recipe_settings", "train", "TEST_RESULT"]

TEST_BATCH_SIZE = 500
# A run that selects its weights on a validation split measures the test split once, at the end, here.
TEST_RESULT = "test.json"


def outputs_logits(model):
    """Whether ``model`` ends in logits (ResNet-26, converted PyTorch heads) rather than a softmax."""
    activation = getattr(model.layers[-1], "activation", None)
    return activation is not keras.activations.softmax


def build_for_run(model_name, classes, input_shape, dropout, precision="float32"):
    """The uncompiled model of a run: ``classes`` outputs, the run's dropout (None: the model's default)."""
    kwargs = {"dropout": dropout} if dropout is not None else {}
    return create_model(model_name, classes=classes, input_shape=input_shape, compile=False, precision=precision,
                        **kwargs)


def _build_headless(model_name, input_shape, precision):
    return create_model(model_name, include_top=False, input_shape=input_shape, compile=False, precision=precision)


def train(model_name, data, out_dir, recipe="wrn", epochs=None, batch_size=None, seed=0, resume=False,
          dropout=None, limit_train=None, verbose=None, *, init_weights=None, freeze_backbone=False,
          normalization="meanstd", image_size=None, distribute=None, command=None, on_commit=None,
          learning_rate=None, weight_decay=None, val_fraction=None, precision=None):
    """Train ``model_name`` (a registry name) on ``data`` into ``out_dir``; see `keras_wrn.training`.

    Args:
        recipe: a name from `keras_wrn.recipes.RECIPES`; ``epochs`` scales its schedule.
        batch_size: the global batch; defaults to the recipe's (128).
        resume: continue the run in ``out_dir`` from its last completed epoch.
            Without it, an ``out_dir`` that already holds a run is refused (never overwritten).
        limit_train: use only the first N training images (quick runs and tests).
        verbose: None (default): Keras' progress bar on a terminal, plain lines
            every few seconds otherwise; 0 silent; 1 or 2 as in ``model.fit``.
        init_weights: fine-tuning: a released weights name or a ``.weights.h5``
            of the same architecture (any classifier width); its backbone is
            loaded, the head is new.  A release's normalisation is kept
            (its mean/std, not the new data's).
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
        learning_rate, weight_decay: override the recipe's base learning rate
            (its schedule keeps its shape) and its L2 coefficient.
        val_fraction: hold out this fraction of the training images (seeded,
            stratified by class) as the validation split that picks ``best``
            and is logged as ``val_*``; the test split, if the data has one, is
            then evaluated once at the end (``test.json``).  Without it the
            test split is the validation data (the papers' per-epoch test
            error); data without a test split needs it.
        on_commit: optional ``on_commit(stage, epoch)`` called in every process
            at each point of an epoch's commit, `rundir.COMMIT_STAGES`
            (``"weights-written"``: the epoch's weights are on disk but
            ``state.json`` still names the previous epoch; ``"state-committed"``;
            ``"logs-written"``), with ``epoch`` counted from 1.  Tests use it to
            kill a run at a known point of the protocol; an exception it raises
            stops training there, as a crash would.

    Returns:
        The list of per-epoch history rows (dicts).
    """
    recipe = get_recipe(recipe)
    model_args(model_name)  # unknown names fail before any data is read
    epochs = recipe.epochs if epochs is None else epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"--epochs {epochs!r}: expected an integer >= 1.")
    check_normalization(normalization)
    if freeze_backbone and not init_weights:
        raise ValueError("--freeze-backbone needs --weights (the backbone to freeze).")
    recipe = _override_recipe(recipe, learning_rate, weight_decay)
    if precision is not None or not resume:
        precision = resolve_precision(precision, "--precision")
    if val_fraction is not None and (not isinstance(val_fraction, (int, float)) or isinstance(val_fraction, bool)
                                     or not 0 <= val_fraction < 1):
        raise ValueError(f"--val-fraction {val_fraction!r}: expected a number in [0, 1).")
    if val_fraction and distribute == "multi-worker":
        raise ValueError("--val-fraction with --distribute multi-worker is not supported (the final test "
                         "evaluation runs on the chief alone); use mirrored or none.")
    init_record, init_statistics = init_weights, None
    if init_weights is not None and is_weights_name(os.fspath(init_weights)):
        init_weights, entry = resolve_weights(init_weights)  # hash checked (downloaded if need be)
        init_statistics = entry["preprocessing"]
        if normalization != "meanstd":
            raise ValueError(f"--normalization {normalization!r}: the release {init_record!r} was trained with "
                             "per-channel mean/std, which fine-tuning keeps; use --normalization meanstd.")
    elif init_weights is not None:
        init_weights = init_record = os.path.abspath(os.fspath(init_weights))
        if not os.path.isfile(init_weights):
            raise FileNotFoundError(f"--weights {init_weights!r}: no such file (nor a released weights name).")
    batch_size = batch_size or recipe.batch_size
    strategy = make_strategy(distribute)
    chief = is_chief(strategy)
    out_dir = os.fspath(out_dir)
    # The chief holds the run directory's lock from before its checks until the run ends.
    with locked_directory(out_dir) if chief else contextlib.nullcontext():
        rundir.check_out_dir(out_dir, resume, chief)
        committed = rundir.read_state(out_dir) if resume else None  # a damaged state fails before data load
        # Only the chief writes the run; other workers write to a scratch directory.
        write_dir = out_dir if chief else tempfile.mkdtemp(prefix="keras-wrn-worker-")

        with_test = has_split(data, "test")
        if not with_test and not val_fraction:
            raise ValueError(f"--data {os.fspath(data)!r} has no test split; give --val-fraction to hold out "
                             "validation images from the training ones.")
        arrays = load_data(data, splits=("train", "test") if with_test else ("train",), image_size=image_size)
        x_train, y_train = arrays["x_train"], arrays["y_train"]
        if limit_train:
            x_train, y_train = x_train[:limit_train], y_train[:limit_train]
        if len(arrays["class_names"]) < 2:
            raise ValueError(f"--data {os.fspath(data)!r} has {len(arrays['class_names'])} class "
                             f"({', '.join(arrays['class_names'])}); a classifier needs at least two.")
        x_val, y_val = (arrays["x_test"], arrays["y_test"]) if with_test else (None, None)
        if val_fraction:
            x_train, x_val, y_train, y_val = _split_validation(x_train, y_train, val_fraction, seed)
        config = dict(model=model_name, data=os.path.abspath(data), data_fingerprint=data_fingerprint(data),
                      recipe=recipe.name, recipe_settings=recipe_settings(recipe), epochs=epochs,
                      batch_size=batch_size, seed=seed, dropout=dropout, class_names=arrays["class_names"],
                      limit_train=limit_train, normalization=normalization, init_weights=init_record,
                      learning_rate=recipe.learning_rate, weight_decay=recipe.weight_decay, val_fraction=val_fraction,
                      freeze_backbone=bool(freeze_backbone), image_shape=list(x_train.shape[1:]),
                      distribute=distribute or "none", precision=precision, command=command, commit=source_commit(),
                      machine=machine_description(), started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if init_statistics is not None:
            config.update(mean=init_statistics["mean"], std=init_statistics["std"])
        if resume:
            config = rundir.check_resume(out_dir, config)
            if chief:
                remove_temporaries(out_dir)  # half-written files of the killed run
        os.makedirs(write_dir, exist_ok=True)
        zca = normalise(config, out_dir if resume else write_dir, x_train, write=True)
        precision = config.get("precision") or "float32"  # a run from before precisions existed: float32

        keras.utils.set_random_seed(seed)
        image_shape = x_train.shape[1:]
        scope = strategy.scope() if strategy is not None else contextlib.nullcontext()
        with scope:
            model = build_for_run(model_name, len(arrays["class_names"]), image_shape, dropout, precision)
            synchronize_batch_norm(model, strategy)
            if init_weights and not resume:
                load_backbone(model, init_weights, lambda classes: build_for_run(
                    model_name, classes, image_shape, dropout, precision) if classes
                    else _build_headless(model_name, image_shape, precision))
            if freeze_backbone:
                for layer in model.layers:
                    layer.trainable = layer.name in HEAD_LAYERS
            steps_per_epoch = -(-len(x_train) // batch_size)
            schedule = learning_rate_schedule(recipe, steps_per_epoch, epochs)
            averaging = dict(use_ema=True, ema_momentum=recipe.ema_momentum) if recipe.ema_momentum else {}
            optimizer = CoupledWeightDecaySGD(
                learning_rate=schedule, momentum=recipe.momentum, nesterov=recipe.nesterov, l2=recipe.weight_decay,
                average_at_fit_end=False, **averaging,
            )
            model.compile(optimizer=optimizer, metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                          loss=recipe_loss(recipe.label_smoothing, outputs_logits(model)))
            model.build((None,) + image_shape)
            model.optimizer.build(model.trainable_variables)  # float16: Keras' loss-scaling wrapper of it
            # With averaging, best/last are the averaged weights; checkpoints keep the trained ones.
            published = (lambda: optimizer.averaged_weights(model.trainable_variables)) if averaging else None

            state = committed
            if state is not None:
                rundir.load_checkpoint(model, out_dir, state)
            else:
                state = rundir.initial_state()
                if not resume:
                    rundir.write_run(write_dir, config)

            # fit runs inside the scope: MultiWorkerMirroredStrategy needs it to distribute the data.
            validation = pipeline(x_val, y_val, TEST_BATCH_SIZE, config, zca)
            tensorboard = keras.callbacks.TensorBoard(os.path.join(write_dir, "tensorboard"), write_graph=False)
            for epoch in range(state["completed_epochs"], epochs):
                started = time.perf_counter()
                learning_rate = float(keras.ops.convert_to_numpy(schedule(epoch * steps_per_epoch)))
                if verbose != 0 and chief:  # Keras' own line reads "Epoch k/k": one fit call per epoch
                    print(f"epoch {epoch + 1}/{epochs}, learning rate {learning_rate:g}", flush=True)
                train_set = pipeline(x_train, y_train, batch_size, config, zca, recipe.augmentation,
                                     shuffle=True, seed=rundir.epoch_seed(seed, epoch))
                with multi_worker_fit_workaround(model, strategy):  # changes nothing unless multi-worker
                    result = model.fit(train_set, validation_data=validation, initial_epoch=epoch, epochs=epoch + 1,
                                       callbacks=[tensorboard] + progress_callbacks(verbose, f"epoch {epoch + 1}"),
                                       shuffle=False, verbose=keras_verbose(verbose))
                row = {"epoch": epoch + 1, "learning_rate": learning_rate}
                row.update({key: float(values[-1]) for key, values in result.history.items()})
                if published is not None:
                    with published():
                        row["ema_val_loss"], row["ema_val_accuracy"] = map(float, model.evaluate(validation, verbose=0))
                rundir.commit_epoch(write_dir, model, state, row, time.perf_counter() - started, on_commit,
                                    published_weights=published)
            if val_fraction and with_test and chief and not os.path.exists(os.path.join(out_dir, TEST_RESULT)):
                _report_test_once(model, out_dir, state, pipeline(arrays["x_test"], arrays["y_test"], TEST_BATCH_SIZE,
                                                                   config, zca), len(arrays["y_test"]))
        if not chief:
            shutil.rmtree(write_dir, ignore_errors=True)
    return state["history"]


def recipe_settings(recipe):
    """``recipe``'s fields as JSON values, less its prose ``source``: run.json records them so that ``--resume``
    refuses a recipe whose definition changed since the run started."""
    settings = dataclasses.asdict(recipe)
    del settings["source"]
    return json.loads(json.dumps(settings))


def _override_recipe(recipe, learning_rate, weight_decay):
    changes = {}
    if learning_rate is not None:
        if not isinstance(learning_rate, (int, float)) or isinstance(learning_rate, bool) or learning_rate <= 0:
            raise ValueError(f"--lr {learning_rate!r}: expected a number > 0.")
        changes["learning_rate"] = float(learning_rate)
    if weight_decay is not None:
        try:
            validate_l2(weight_decay)
        except ValueError:
            raise ValueError(f"--weight-decay {weight_decay!r}: expected a number >= 0.") from None
        changes["weight_decay"] = weight_decay
    return dataclasses.replace(recipe, **changes) if changes else recipe


def _split_validation(images, labels, fraction, seed):
    """``(x_train, x_val, y_train, y_val)``: a seeded split stratified by class (scikit-learn)."""
    from sklearn.model_selection import train_test_split  # deferred: scikit-learn, needed only here

    try:
        return train_test_split(images, labels, test_size=fraction, stratify=labels, random_state=seed)
    except ValueError as error:
        raise ValueError(f"--val-fraction {fraction}: cannot hold out a stratified validation split of "
                         f"{len(labels)} training images ({error}).") from None


def _report_test_once(model, out_dir, state, test_set, images):
    """Evaluate the ``best`` weights (chosen on validation data) on the test split, once; write `TEST_RESULT`."""
    model.load_weights(os.path.join(out_dir, "best.weights.h5"))
    _, accuracy = model.evaluate(test_set, verbose=0)
    write_json(os.path.join(out_dir, TEST_RESULT), dict(
        split="test", images=int(images), weights="best.weights.h5", best_epoch=state["best_epoch"],
        accuracy=float(accuracy), top1_error=1.0 - float(accuracy)))
