"""Resumable training: kill -9 mid-run, --resume, same weights as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from helpers import read_weights, write_image_folder
from keras_wrn.training import train


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(tmp_path / "data")


def test_train_writes_the_run_files(folder, tmp_path):
    history = train("wrn-16-1", folder, tmp_path / "run", epochs=2, batch_size=16, verbose=0)
    assert [row["epoch"] for row in history] == [1, 2]
    names = set(os.listdir(tmp_path / "run"))
    assert {"run.json", "state.json", "last.weights.h5", "best.weights.h5", "log.csv", "curves.png",
            "tensorboard", "checkpoint-2.weights.h5"} <= names
    assert not [n for n in names if n.startswith(".tmp-")]
    umask = os.umask(0)
    os.umask(umask)
    modes = {n: oct(os.stat(tmp_path / "run" / n).st_mode & 0o777) for n in names if n != "tensorboard"}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes  # the user's umask, not mkstemp's 0600
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 3
    with pytest.raises(ValueError, match="already holds a run"):
        train("wrn-16-1", folder, tmp_path / "run", epochs=2, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="run of model='wrn-16-1'"):
        train("wrn-16-2", folder, tmp_path / "run", epochs=2, batch_size=16, verbose=0, resume=True)
    with pytest.raises(ValueError, match="recipe='sgdr' does not exist"):
        train("wrn-16-1", folder, tmp_path / "run2", recipe="sgdr")


# The run the resume test repeats: the command line, and the same arguments through `train`.
RESUME_RUN = ["train", "wrn-16-1", "--epochs", "4", "--batch-size", "16", "--verbose", "0", "--dropout", "0.3"]
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")

# Trains (or resumes) as RESUME_RUN does, and SIGKILLs its own process from the commit hook when epoch
# EPOCH reaches STAGE (argv: DATA OUT STAGE EPOCH RESUME): the kill lands at a known point of the commit
# protocol, whatever the machine's speed, and the process dies as it would from `kill -9` (no
# exception, no cleanup).
KILL_ON_COMMIT = """
import os, signal, sys

from keras_wrn.training import train

data, out, stage, epoch, resume = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "resume"


def on_commit(reached, completed):
    if (reached, completed) == (stage, epoch):
        os.kill(os.getpid(), signal.SIGKILL)


train("wrn-16-1", data, out, epochs=4, batch_size=16, verbose=0, dropout=0.3, on_commit=on_commit, resume=resume)
"""


def cli_train(data, out, *extra):
    command = [sys.executable, "-m", "keras_wrn"] + RESUME_RUN + ["--data", str(data), "--out", str(out), *extra]
    subprocess.run(command, check=True, env=QUIET, timeout=600)


def kill_on_commit(data, out, stage, epoch, resume=False):
    process = subprocess.run([sys.executable, "-c", KILL_ON_COMMIT, str(data), str(out), stage, str(epoch),
                              "resume" if resume else "new"], env=QUIET, timeout=600)
    assert process.returncode == -signal.SIGKILL, "the commit hook should have killed the run"
    return json.loads((out / "state.json").read_text())


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_weights(tmp_path):
    """Killed inside two points of the commit protocol, resumed each time: the uninterrupted run's bits."""
    data = write_image_folder(tmp_path / "data")
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    cli_train(data, straight)

    # Epoch 2's checkpoint and last.weights.h5 are written, state.json not yet replaced.
    state = kill_on_commit(data, killed, "weights-written", 2)
    assert state["completed_epochs"] == 1, "the kill should land mid-run, at the hook's point"
    assert state["checkpoint"] == "checkpoint-1.weights.h5" and (killed / "checkpoint-2.weights.h5").exists()
    # Resumed, then killed again: epoch 3 committed; the old checkpoint, log.csv and curves.png not updated.
    state = kill_on_commit(data, killed, "state-committed", 3, resume=True)
    assert state["completed_epochs"] == 3
    assert (killed / "log.csv").read_text().count("\n") == 3  # header + epochs 1-2: one epoch behind
    assert (killed / "checkpoint-2.weights.h5").exists()
    cli_train(data, killed, "--resume")

    expected, resumed = read_weights(straight / "last.weights.h5"), read_weights(killed / "last.weights.h5")
    assert expected.keys() == resumed.keys()
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)
    assert (straight / "log.csv").read_text() == (killed / "log.csv").read_text()
    assert sorted(path.name for path in killed.glob("checkpoint-*")) == ["checkpoint-4.weights.h5"]


@pytest.mark.parametrize("name, logits", [("wrn-16-1", False), ("resnet26-w0.5", True)])
def test_loss_matches_the_head(folder, tmp_path, monkeypatch, name, logits):
    """Softmax heads train on probabilities, ResNet-26's logit head on logits (treating its logits as
    probabilities made a ResNet-26 run collapse to a constant prediction)."""
    import keras

    from keras_wrn.registry import create_model
    from keras_wrn.training import outputs_logits

    assert outputs_logits(create_model(name, classes=3, compile=False)) is logits
    seen = []
    original = keras.Model.compile

    def spy(model, *args, **kwargs):
        seen.append(kwargs["loss"].get_config()["from_logits"])
        return original(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "compile", spy)
    history = train(name, str(folder), str(tmp_path / "run"), recipe="wrn", epochs=1, verbose=0)
    assert seen == [logits] and np.isfinite(history[-1]["loss"]) and history[-1]["loss"] < 3.0



@pytest.fixture
def averaging_recipe(monkeypatch):
    """``fast-ema``: the fast recipe with a moving average of the weights (no shipped recipe keeps one)."""
    import dataclasses

    from keras_wrn.recipes import RECIPES

    monkeypatch.setitem(RECIPES, "fast-ema", dataclasses.replace(RECIPES["fast"], name="fast-ema", ema_momentum=0.999))
    return "fast-ema"


def test_a_moving_average_is_published_and_the_trained_weights_checkpointed(folder, tmp_path, averaging_recipe):
    """best/last hold the weights' moving average, evaluated as ``ema_val_*``; the checkpoint holds the trained
    weights (evaluated as Keras' ``val_*``) and the average inside the optimizer's state."""
    from keras_wrn.training import evaluate
    from keras_wrn.training.rundir import time_to_accuracy

    run = tmp_path / "run"
    history = train("wrn-16-1", folder, run, recipe=averaging_recipe, epochs=2, batch_size=16, verbose=0)
    stored = json.loads((run / "run.json").read_text())
    assert stored["recipe_settings"]["ema_momentum"] == 0.999 and "source" not in stored["recipe_settings"]
    last = history[-1]
    assert {"ema_val_accuracy", "ema_val_loss", "val_accuracy"} <= set(last)
    published = evaluate("wrn-16-1", str(run / "last.weights.h5"), folder)
    trained = evaluate("wrn-16-1", str(run / "checkpoint-2.weights.h5"), folder)
    assert published["accuracy"] == pytest.approx(last["ema_val_accuracy"], abs=1e-6)
    assert trained["accuracy"] == pytest.approx(last["val_accuracy"], abs=1e-6)
    checkpoint, averaged = read_weights(run / "checkpoint-2.weights.h5"), read_weights(run / "last.weights.h5")
    kernel = next(key for key in checkpoint if key.startswith("layers/") and "conv" in key)
    assert not np.array_equal(checkpoint[kernel], averaged[kernel])
    assert any(np.array_equal(averaged[kernel], value) for key, value in checkpoint.items()
               if key.startswith("optimizer/"))  # the average is part of the checkpoint
    seconds, epoch = time_to_accuracy(run, 0.0)
    assert epoch == 1 and seconds == json.loads((run / "state.json").read_text())["epoch_seconds"][0]
    assert time_to_accuracy(run, 1.01) == (None, None)


def test_resume_refuses_a_changed_recipe_definition(folder, tmp_path):
    train("wrn-16-1", folder, tmp_path / "run", recipe="fast", epochs=1, batch_size=16, verbose=0, limit_train=16)
    stored = json.loads((tmp_path / "run" / "run.json").read_text())
    stored["recipe_settings"]["label_smoothing"] = 0.2
    (tmp_path / "run" / "run.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="run of recipe_settings=.*'label_smoothing': 0.2"):
        train("wrn-16-1", folder, tmp_path / "run", recipe="fast", epochs=1, batch_size=16, verbose=0,
              limit_train=16, resume=True)


@pytest.mark.slow
def test_fast_recipe_with_a_moving_average_resumes_bit_identically(folder, tmp_path, averaging_recipe):
    from helpers import StopRun, stop_after_first_epoch

    arguments = dict(recipe=averaging_recipe, epochs=2, batch_size=16, verbose=0)
    train("wrn-16-1", folder, tmp_path / "straight", **arguments)
    with pytest.raises(StopRun):
        train("wrn-16-1", folder, tmp_path / "split", **arguments, on_commit=stop_after_first_epoch)
    train("wrn-16-1", folder, tmp_path / "split", **arguments, resume=True)
    for name in ("last.weights.h5", "best.weights.h5", "checkpoint-2.weights.h5"):
        a, b = read_weights(tmp_path / "straight" / name), read_weights(tmp_path / "split" / name)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name}: {key}")
    assert (tmp_path / "straight" / "log.csv").read_text() == (tmp_path / "split" / "log.csv").read_text()


@pytest.mark.parametrize("name", ["resnet26-w0.5", pytest.param("preact-20", marks=pytest.mark.slow),
                                  pytest.param("ror3-56", marks=pytest.mark.slow),
                                  pytest.param("wrn-ram-28-4", marks=pytest.mark.slow)])
def test_fast_recipe_trains_every_family(folder, tmp_path, name):
    """One epoch of the fast recipe per family (ResNet-26's logit head: smoothed loss on logits)."""
    history = train(name, folder, tmp_path / "run", recipe="fast", epochs=1, batch_size=16, verbose=0)
    assert np.isfinite(history[0]["loss"]) and 0 <= history[0]["val_accuracy"] <= 1
    assert json.loads((tmp_path / "run" / "run.json").read_text())["recipe_settings"]["schedule"] == "one-cycle"
