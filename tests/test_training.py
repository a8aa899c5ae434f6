"""Resumable training: kill -9 mid-run, --resume, same weights as an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from keras_wrn.training import train


def write_image_folder(root, classes=3, train_per_class=16, test_per_class=4):
    import keras

    rng = np.random.default_rng(0)
    colours = rng.integers(30, 220, size=(classes, 3))
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label in range(classes):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True)
            for index in range(count):
                noise = rng.integers(-30, 30, size=(32, 32, 3))
                image = np.clip(colours[label] + noise, 0, 255).astype("uint8")
                keras.utils.save_img(str(folder / f"{index:04d}.png"), image)
    return root


def read_weights(path):
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return arrays


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
    assert (tmp_path / "run" / "log.csv").read_text().count("\n") == 3
    with pytest.raises(ValueError, match="already holds a run"):
        train("wrn-16-1", folder, tmp_path / "run", epochs=2, batch_size=16, verbose=0)
    with pytest.raises(ValueError, match="run of model='wrn-16-1'"):
        train("wrn-16-2", folder, tmp_path / "run", epochs=2, batch_size=16, verbose=0, resume=True)
    with pytest.raises(ValueError, match="recipe='sgdr' does not exist"):
        train("wrn-16-1", folder, tmp_path / "run2", recipe="sgdr")


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_same_weights(folder, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    base = [sys.executable, "-m", "keras_wrn", "train", "wrn-16-1", "--data", str(folder),
            "--epochs", "4", "--batch-size", "16", "--verbose", "0", "--dropout", "0.3"]
    straight = tmp_path / "straight"
    subprocess.run(base + ["--out", str(straight)], check=True, env=env, timeout=600)

    killed = tmp_path / "killed"
    process = subprocess.Popen(base + ["--out", str(killed)], env=env)
    state = killed / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text())["completed_epochs"] >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    completed = json.loads(state.read_text())["completed_epochs"]
    assert 2 <= completed < 4, "the kill should land mid-run"
    subprocess.run(base + ["--out", str(killed), "--resume"], check=True, env=env, timeout=600)

    expected, resumed = read_weights(straight / "last.weights.h5"), read_weights(killed / "last.weights.h5")
    assert expected.keys() == resumed.keys()
    for name in expected:
        np.testing.assert_array_equal(resumed[name], expected[name], err_msg=name)
    assert (straight / "log.csv").read_text() == (killed / "log.csv").read_text()


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

