"""keras-wrn evaluate (top-1 error, confusion matrix), fine-tuning with a new head, ZCA runs."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from keras_wrn.data import load_data
from keras_wrn.training import evaluate, train
from helpers import write_image_folder

QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    data = write_image_folder(root / "data")
    train("wrn-16-1", data, root / "run", epochs=2, batch_size=16, verbose=0)
    return data, root / "run"


def independent_error(data, run, weights):
    """Top-1 error recomputed by hand from run.json's statistics."""
    from keras_wrn.registry import create_model

    config = json.loads((run / "run.json").read_text())
    arrays = load_data(data, splits=("test",))
    model = create_model("wrn-16-1", classes=3, compile=False)
    model.load_weights(weights)
    x = (arrays["x_test"].astype("float32") - np.array(config["mean"], "float32")) / np.array(config["std"], "float32")
    predictions = model.predict(x, verbose=0).argmax(axis=-1)
    return float(np.mean(predictions != arrays["y_test"]))


def test_evaluate_matches_a_hand_computed_error(trained, tmp_path):
    data, run = trained
    result = evaluate("wrn-16-1", run / "last.weights.h5", data, confusion_png=tmp_path / "cm.png")
    assert result["images"] == 12
    assert result["top1_error"] == pytest.approx(independent_error(data, run, run / "last.weights.h5"))
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == 12 and list(matrix.sum(axis=1)) == [4, 4, 4]
    assert result["top1_error"] == pytest.approx(1 - np.trace(matrix) / 12)
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_cli_prints_the_error_and_writes_json(trained, tmp_path):
    data, run = trained
    out = subprocess.run(
        [sys.executable, "-m", "keras_wrn", "evaluate", "wrn-16-1", "--weights", str(run / "best.weights.h5"),
         "--data", str(data), "--confusion", str(tmp_path / "cm.png"), "--json", str(tmp_path / "m.json")],
        capture_output=True, text=True, env=QUIET, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert f"top-1 error {100 * metrics['top1_error']:.2f}%" in out.stdout
    assert os.path.exists(tmp_path / "cm.png")


@pytest.mark.parametrize("option", ["--json", "--confusion"])
def test_evaluate_cli_refuses_an_output_in_a_missing_folder_before_evaluating(option, tmp_path, capsys):
    from keras_wrn.cli import main

    target = str(tmp_path / "missing" / "out.file")
    code = main(["evaluate", "wrn-16-1", "--weights", str(tmp_path / "none.weights.h5"), "--data", str(tmp_path),
                 option, target])
    assert code == 2  # the missing weights and data would be reported only after this check
    assert capsys.readouterr().err.strip() == (f"keras-wrn evaluate: error: {option} {target!r}: the folder "
                                               f"{str(tmp_path / 'missing')!r} does not exist.")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("option", ["--json", "--confusion"])
def test_evaluate_cli_refuses_an_existing_output_before_evaluating(option, tmp_path, capsys):
    from keras_wrn.cli import main

    target = tmp_path / "out.file"
    target.write_text("the user's")
    code = main(["evaluate", "wrn-16-1", "--weights", str(tmp_path / "none.weights.h5"), "--data", str(tmp_path),
                 option, str(target)])
    assert code == 2  # the missing weights and data would be reported only after this check
    assert capsys.readouterr().err.strip() == (f"keras-wrn evaluate: error: {option} {str(target)!r} exists; choose "
                                               "another path (nothing is overwritten).")
    assert target.read_text() == "the user's" and os.listdir(tmp_path) == ["out.file"]


def test_evaluate_cli_numbers_its_default_confusion_png_rather_than_replace_one(trained, tmp_path, capsys):
    from keras_wrn.cli import main

    data, run = trained
    shutil.copy(run / "best.weights.h5", tmp_path / "best.weights.h5")
    shutil.copy(run / "run.json", tmp_path / "run.json")
    first = tmp_path / "confusion-best-test.png"
    first.write_bytes(b"an earlier plot")
    for expected in ("confusion-best-test-2.png", "confusion-best-test-3.png"):
        assert main(["evaluate", "wrn-16-1", "--weights", str(tmp_path / "best.weights.h5"), "--data", str(data)]) == 0
        assert f"confusion matrix: {tmp_path / expected}" in capsys.readouterr().out
        assert (tmp_path / expected).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.read_bytes() == b"an earlier plot"


def test_evaluate_errors(trained, tmp_path):
    data, run = trained
    with pytest.raises(ValueError, match="belongs to a run of model 'wrn-16-1'"):
        evaluate("wrn-16-2", run / "last.weights.h5", data)
    with pytest.raises(FileNotFoundError, match="no such file"):
        evaluate("wrn-16-1", tmp_path / "missing.weights.h5", data)
    other = tmp_path / "other.weights.h5"  # no run.json beside it: the data's training statistics
    shutil.copy(run / "last.weights.h5", other)
    assert evaluate("wrn-16-1", other, data)["images"] == 12
    with pytest.raises(ValueError, match="does not fit wrn-16-2"):
        evaluate("wrn-16-2", other, data)


def test_finetune_with_a_frozen_backbone_trains_only_the_new_head(trained, tmp_path):
    data, run = trained
    new_data = write_image_folder(tmp_path / "two", classes=2)
    history = train("wrn-16-1", new_data, tmp_path / "ft", recipe="finetune", epochs=1, batch_size=16, verbose=0,
                    init_weights=run / "last.weights.h5", freeze_backbone=True)
    assert len(history) == 1
    from keras_wrn.registry import create_model

    source = create_model("wrn-16-1", classes=3, compile=False)
    source.load_weights(run / "last.weights.h5")
    tuned = create_model("wrn-16-1", classes=2, compile=False)
    tuned.load_weights(tmp_path / "ft" / "last.weights.h5")
    for layer in source.layers:
        if layer.name != "predictions":  # conv kernels and BN moving statistics untouched
            for before, after in zip(layer.get_weights(), tuned.get_layer(layer.name).get_weights()):
                np.testing.assert_array_equal(after, before, err_msg=layer.name)
    assert tuned.get_layer("predictions").get_weights()[0].shape == (16 * 4, 2)


def test_finetune_without_freezing_moves_the_backbone(trained, tmp_path):
    data, run = trained
    train("wrn-16-1", data, tmp_path / "ft", recipe="finetune", epochs=1, batch_size=16, verbose=0,
          init_weights=run / "last.weights.h5")
    from keras_wrn.registry import create_model

    source = create_model("wrn-16-1", classes=3, compile=False)
    source.load_weights(run / "last.weights.h5")
    tuned = create_model("wrn-16-1", classes=3, compile=False)
    tuned.load_weights(tmp_path / "ft" / "last.weights.h5")
    assert not np.array_equal(source.get_layer("stem_conv").get_weights()[0], tuned.get_layer("stem_conv").get_weights()[0])


def test_finetune_errors(trained, tmp_path):
    data, run = trained
    with pytest.raises(ValueError, match="--freeze-backbone needs --weights"):
        train("wrn-16-1", data, tmp_path / "a", freeze_backbone=True)
    with pytest.raises(FileNotFoundError, match="no such file"):
        train("wrn-16-1", data, tmp_path / "b", init_weights=tmp_path / "nope.weights.h5")
    with pytest.raises(ValueError, match="does not fit the"):
        train("wrn-16-2", data, tmp_path / "c", epochs=1, init_weights=run / "last.weights.h5", verbose=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_zca_whitening_is_exact_and_runs_train_and_evaluate(trained, tmp_path):
    from keras_wrn.data.whitening import apply_zca, fit_zca

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(48, 48))
    images = np.clip(rng.normal(size=(600, 48)) @ mixing * 8 + 128, 0, 255).astype(np.uint8).reshape(600, 4, 4, 3)
    mean, matrix = fit_zca(images, epsilon=0.0)
    white = apply_zca(images, mean, matrix).reshape(600, -1).astype(np.float64)
    np.testing.assert_allclose(np.cov(white, rowvar=False, bias=True), np.eye(48), atol=2e-3)
    np.testing.assert_allclose(matrix, matrix.T, atol=1e-5)  # zero-phase: symmetric
    with pytest.raises(ValueError, match="need a \\(24,\\) mean .* got \\(48,\\)"):
        apply_zca(images[:, :2], mean, matrix)

    # Fewer images than pixel values: the thin-SVD path equals the eigen-decomposition of the covariance.
    few = images[:30].reshape(30, -1).astype(np.float64) / 255.0
    few -= few.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(few.T @ few / 30)
    for epsilon, floor in ((1e-2, 0.0), (0.0, 1e-12)):
        expected = (eigenvectors / np.sqrt(np.maximum(np.clip(eigenvalues, 0, None) + epsilon, floor))) @ eigenvectors.T
        _, thin = fit_zca(images[:30], epsilon=epsilon)
        np.testing.assert_allclose(thin, expected, rtol=0, atol=1e-6 * np.abs(expected).max())

    data, _ = trained
    train("wrn-16-1", data, tmp_path / "zca", epochs=1, batch_size=16, verbose=0, normalization="zca")
    with np.load(tmp_path / "zca" / "zca.npz", allow_pickle=False) as stored:
        assert stored["matrix"].shape == (3072, 3072)
    assert evaluate("wrn-16-1", tmp_path / "zca" / "last.weights.h5", data)["images"] == 12


def test_builder_weights_path_loads_whole_model_or_backbone(tmp_path):
    import keras_wrn

    source = keras_wrn.create_model("wrn-16-1", compile=False)
    source.save_weights(tmp_path / "s.weights.h5")
    same = keras_wrn.create_model("wrn-16-1", weights=tmp_path / "s.weights.h5", compile=False)
    for expected, got in zip(source.get_weights(), same.get_weights()):
        np.testing.assert_array_equal(got, expected)
    new_head = keras_wrn.create_model("wrn-16-1", classes=5, weights=tmp_path / "s.weights.h5", compile=False)
    headless = keras_wrn.create_model("wrn-16-1", include_top=False, pooling="avg", input_shape=(48, 48, 3),
                                      weights=tmp_path / "s.weights.h5")
    for model in (new_head, headless):
        for layer in source.layers:
            if layer.name != "predictions" and layer.weights:
                for expected, got in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
                    np.testing.assert_array_equal(got, expected, err_msg=layer.name)
    assert new_head.output_shape == (None, 5) and headless.output_shape == (None, 64)
    with pytest.raises(ValueError, match="s.weights.h5: does not fit the wrn_16_2 architecture"):
        keras_wrn.create_model("wrn-16-2", classes=5, weights=tmp_path / "s.weights.h5")
    with pytest.raises(ValueError, match="s.weights.h5'?: does not fit wrn_16_2"):
        keras_wrn.create_model("wrn-16-2", weights=tmp_path / "s.weights.h5")


RELEASE = "wrn-16-1.cifar10-jpeg-e10"


def flatten(image_folder, out):
    """``out/<class>/`` holding every image of ``image_folder``'s train and test splits (a plain photo folder)."""
    for split in ("train", "test"):
        for folder in (image_folder / split).iterdir():
            (out / folder.name).mkdir(parents=True, exist_ok=True)
            for image in folder.iterdir():
                shutil.copy(image, out / folder.name / f"{split}-{image.name}")
    return out


def test_finetune_a_release_on_a_flat_folder_from_the_command_line(tmp_path):
    from keras_wrn.weights import weights_info

    photos = flatten(write_image_folder(tmp_path / "split", classes=5, train_per_class=8, test_per_class=2),
                     tmp_path / "photos")
    out = subprocess.run([sys.executable, "-m", "keras_wrn", "finetune", "wrn-16-1", "--weights", RELEASE,
                          "--data", str(photos), "--out", str(tmp_path / "run"), "--epochs", "2", "--batch-size",
                          "16", "--lr", "0.005", "--weight-decay", "1e-4"],
                         capture_output=True, text=True, env=QUIET, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "validation error" in out.stdout and "\x1b" not in out.stdout and "\b" not in out.stdout
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    released = weights_info(RELEASE)["preprocessing"]
    assert (run["mean"], run["std"]) == (released["mean"], released["std"])  # the pretrained normalisation
    assert (run["init_weights"], run["learning_rate"], run["weight_decay"], run["val_fraction"]) == (
        RELEASE, 0.005, 1e-4, 0.1)
    assert run["class_names"] == [f"class{i}" for i in range(5)]
    assert not (tmp_path / "run" / "test.json").exists()  # no test split: nothing reported


def test_finetune_selects_on_validation_and_reports_the_test_split_once(tmp_path):
    data = write_image_folder(tmp_path / "data", classes=3, train_per_class=10, test_per_class=4)
    history = train("wrn-16-1", data, tmp_path / "run", recipe="finetune", epochs=2, batch_size=16, verbose=0,
                    init_weights=RELEASE, val_fraction=0.2)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["best_val_accuracy"] == max(row["val_accuracy"] for row in history)
    test = json.loads((tmp_path / "run" / "test.json").read_text())
    assert test["images"] == 12 and test["best_epoch"] == state["best_epoch"]
    result = evaluate("wrn-16-1", tmp_path / "run" / "best.weights.h5", data)
    assert abs(result["top1_error"] - test["top1_error"]) < 1e-6  # the same weights, the same 12 images


@pytest.mark.parametrize("kwargs, message", [
    (dict(val_fraction=1.5), "--val-fraction 1.5: expected a number in"),
    (dict(learning_rate=-1.0), "--lr -1.0: expected a number > 0"),
    (dict(weight_decay=-1e-4), "--weight-decay -0.0001: expected a number >= 0"),
    (dict(init_weights=RELEASE, normalization="zca"), "fine-tuning keeps; use --normalization meanstd"),
])
def test_finetune_argument_errors(tmp_path, kwargs, message):
    data = write_image_folder(tmp_path / "data", classes=2, train_per_class=2, test_per_class=1)
    with pytest.raises(ValueError, match=message):
        train("wrn-16-1", data, tmp_path / "run", recipe="finetune", epochs=1, verbose=0, **kwargs)
    assert not (tmp_path / "run").exists()


def test_a_flat_folder_needs_a_validation_fraction(tmp_path):
    photos = flatten(write_image_folder(tmp_path / "split", classes=2, train_per_class=2, test_per_class=1),
                     tmp_path / "photos")
    with pytest.raises(ValueError, match="has no test split; give --val-fraction"):
        train("wrn-16-1", photos, tmp_path / "run", epochs=1, verbose=0)


def hand_flip_tta_error(model, x, labels, logits):
    """Flip TTA by hand: the mean of the class probabilities of the images and of their mirror images."""
    import scipy.special

    def probabilities(images):
        scores = model.predict(images, verbose=0)
        return scipy.special.softmax(scores, axis=-1) if logits else scores

    averaged = (probabilities(x) + probabilities(x[:, :, ::-1])) / 2
    return float(np.mean(averaged.argmax(axis=-1) != labels))


def test_flip_tta_matches_a_hand_computed_error_and_reports_the_plain_one(trained):
    from keras_wrn.registry import create_model

    data, run = trained
    weights = run / "last.weights.h5"
    plain = evaluate("wrn-16-1", weights, data)
    flipped = evaluate("wrn-16-1", weights, data, tta="flip")
    assert (plain["tta"], flipped["tta"]) == ("none", "flip") and "plain_top1_error" not in plain
    assert flipped["plain_top1_error"] == pytest.approx(plain["top1_error"])
    config = json.loads((run / "run.json").read_text())
    arrays = load_data(data, splits=("test",))
    x = (arrays["x_test"].astype("float32") - np.array(config["mean"], "float32")) / np.array(config["std"], "float32")
    model = create_model("wrn-16-1", classes=3, compile=False)
    model.load_weights(weights)
    assert flipped["top1_error"] == pytest.approx(hand_flip_tta_error(model, x, arrays["y_test"], logits=False))
    with pytest.raises(ValueError, match="--tta 'five-crop': expected one of none, flip"):
        evaluate("wrn-16-1", weights, data, tta="five-crop")


def test_flip_tta_of_a_logits_release_averages_probabilities():
    import keras_wrn
    from keras_wrn.data.datasets import SAMPLE_DIR

    name = "resnet26-w0.5.cifar10-jpeg-e8"
    result = evaluate("resnet26-w0.5", name, SAMPLE_DIR, tta="flip", limit=100)
    arrays = load_data(SAMPLE_DIR, splits=("test",))
    model = keras_wrn.create_model(name, compile=False)  # raw 0-255 pixels in, logits out
    x, labels = arrays["x_test"][:100].astype("float32"), arrays["y_test"][:100]
    assert result["top1_error"] == pytest.approx(hand_flip_tta_error(model, x, labels, logits=True))


@pytest.mark.slow
def test_evaluate_cli_flip_tta_and_a_bad_choice(trained, tmp_path):
    data, run = trained
    command = [sys.executable, "-m", "keras_wrn", "evaluate", "wrn-16-1", "--weights", str(run / "last.weights.h5"),
               "--data", str(data), "--confusion", str(tmp_path / "cm.png"), "--json", str(tmp_path / "m.json")]
    out = subprocess.run(command + ["--tta", "flip"], capture_output=True, text=True, env=QUIET, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["tta"] == "flip"
    assert (f"top-1 error {100 * metrics['top1_error']:.2f}%, flip TTA; without it "
            f"{100 * metrics['plain_top1_error']:.2f}%") in out.stdout
    bad = subprocess.run(command + ["--tta", "rotate"], capture_output=True, text=True, env=QUIET, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "argument --tta: invalid choice: 'rotate'" in bad.stderr
