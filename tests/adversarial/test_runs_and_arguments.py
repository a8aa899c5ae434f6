"""Adversarial cases (issue 14), each failing on the main before it: runs, data and arguments a user can get wrong.

Numbers refer to the issue's classes: 6 resume with other data, 7 a one-class folder, 8 a non-empty
directory that is not a run, 10 temporaries of a killed run, 13 numeric options, 14 builder arguments.
"""

import os
import shutil

import numpy as np
import pytest

import keras_wrn
from helpers import StopRun, stop_after_first_epoch, write_image_folder
from keras_wrn.cli import main
from keras_wrn.training import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("adversarial") / "data", classes=2, train_per_class=4,
                              test_per_class=2)


def test_6_resume_with_other_data_is_refused(data, tmp_path):
    with pytest.raises(StopRun):
        train("wrn-16-1", data, tmp_path / "run", epochs=2, batch_size=8, verbose=0,
              on_commit=stop_after_first_epoch)
    other = tmp_path / "other"
    shutil.copytree(data, other)
    os.remove(next((other / "train" / "class0").iterdir()))
    with pytest.raises(ValueError, match="is a run on other data.*data_fingerprint differs"):
        train("wrn-16-1", other, tmp_path / "run", epochs=2, batch_size=8, verbose=0, resume=True)
    moved = tmp_path / "moved"
    shutil.copytree(data, moved)  # the same files elsewhere: the same data
    train("wrn-16-1", moved, tmp_path / "run", epochs=2, batch_size=8, verbose=0, resume=True)


def test_7_one_class_is_refused_and_accuracy_stays_categorical(tmp_path):
    one = write_image_folder(tmp_path / "one", classes=1, train_per_class=2, test_per_class=1)
    with pytest.raises(ValueError, match="has 1 class .*needs at least two"):
        train("wrn-16-1", one, tmp_path / "run", epochs=1, verbose=0)
    assert not (tmp_path / "run").exists()
    model = keras_wrn.create_model("wrn-16-1", classes=1)  # compiled as every builder compiles
    result = model.evaluate(np.zeros((2, 32, 32, 3), "float32"), np.zeros(2), verbose=0, return_dict=True)
    assert result["accuracy"] == 1.0  # one class: every prediction is right (binary accuracy said otherwise)


def test_8_a_non_empty_directory_that_is_not_a_run_is_refused(data, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "log.csv").write_text("the user's own log\n")
    with pytest.raises(ValueError, match="holds files but no run"):
        train("wrn-16-1", data, out, epochs=1, verbose=0)
    assert [p.name for p in out.iterdir()] == ["log.csv"] and (out / "log.csv").read_text() == "the user's own log\n"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        train("wrn-16-1", data, tmp_path / "file", epochs=1, verbose=0)


def test_10_temporaries_of_a_killed_run_are_removed_on_resume(data, tmp_path):
    with pytest.raises(StopRun):
        train("wrn-16-1", data, tmp_path / "run", epochs=2, batch_size=8, verbose=0,
              on_commit=stop_after_first_epoch)
    left = tmp_path / "run" / ".tmp-abc123.weights.h5"
    left.write_bytes(b"half written")
    train("wrn-16-1", data, tmp_path / "run", epochs=2, batch_size=8, verbose=0, resume=True)
    assert not left.exists()


@pytest.mark.parametrize("option, value", [
    ("--batch-size", "0"), ("--batch-size", "-5"), ("--limit-train", "-5"), ("--cpu-devices", "0"),
    ("--epochs", "0"), ("--lr", "0"), ("--weight-decay", "-1"), ("--dropout", "1.5"), ("--val-fraction", "1"),
])
def test_13_numeric_options_are_checked_before_any_data_is_read(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "wrn-16-1", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "run"), option, value])
    assert exit.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}: expected" in error and "Traceback" not in error
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs", [dict(depth=np.int64(16), width=np.int64(1)), dict(dropout=np.float32(0.25)),
                                    dict(classes=np.int32(7))])
def test_14_numpy_scalars_mean_their_values(kwargs):
    model = keras_wrn.create_wide_residual_network(**dict(dict(depth=10, width=1), **kwargs), compile=False)
    assert model.count_params() > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(classifier_activation="bogus"), "classifier_activation='bogus' is not allowed"),
    (dict(name="a/b"), "name='a/b' is not allowed"),
    (dict(name=""), "name='' is not allowed"),
])
def test_14_bad_activation_and_name_fail_before_any_layer(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_wrn.create_model("wrn-16-1", **kwargs)
