"""The Decathlon score reproduces every published row within 2 points."""

import numpy as np
import pytest

from keras_wrn.decathlon import BASELINE_ERRORS, DOMAINS, PUBLISHED, domain_scores, score


@pytest.mark.parametrize("row", sorted(PUBLISHED))
def test_published_rows(row):
    accuracies, published = PUBLISHED[row]
    errors = {domain: 100 - accuracy for domain, accuracy in zip(DOMAINS, accuracies)}
    assert abs(score(errors) - published) <= 2


def test_definition():
    assert score(BASELINE_ERRORS) == pytest.approx(2500)
    assert score({d: 0.0 for d in DOMAINS}) == pytest.approx(10_000)
    doubled = {d: 2 * e for d, e in BASELINE_ERRORS.items()}
    assert score(doubled) == 0
    assert score({"svhn": 0.0}, require_all=False) == pytest.approx(1000)
    assert domain_scores(BASELINE_ERRORS)["svhn"] == pytest.approx(250)


def test_cli_score(capsys):
    from keras_wrn.cli import main

    pairs = [f"{d}={a}" for d, a in zip(DOMAINS, PUBLISHED["parallel-adapters"][0])]
    assert main(["decathlon", "score", "--accuracy", *pairs]) == 0
    assert "S = 3412" in capsys.readouterr().out
    assert main(["decathlon", "score", "svhn=3.5"]) == 2
    assert "missing domain" in capsys.readouterr().err


def test_errors():
    with pytest.raises(ValueError, match="missing domain"):
        score({"svhn": 3.0})
    with pytest.raises(ValueError, match="unknown domain\\(s\\) \\['mnist'\\]"):
        score({"mnist": 1.0}, require_all=False)
    with pytest.raises(ValueError, match="expected an error in percent"):
        score({"svhn": 130.0}, require_all=False)


@pytest.mark.slow
def test_decathlon_train_command_on_two_small_domains(tmp_path):
    """The protocol end to end on Decathlon-format files: packs, results, shared weights untouched."""
    import json
    import pickle

    from keras_wrn.adapters import resnet26
    from keras_wrn.cli import main
    from helpers import write_domain

    write_domain(tmp_path / "dec", "dtd", 47)
    write_domain(tmp_path / "dec", "svhn", 10)
    stats = {f"{d}{k}": [0.5, 0.5, 0.5] if k == "mean" else [0.25, 0.25, 0.25] for d in ("dtd", "svhn")
             for k in ("mean", "std")}
    (tmp_path / "dec" / "decathlon_mean_std.pickle").write_bytes(pickle.dumps(stats))
    source = resnet26(10, width_factor=0.25, compile=False)
    source.save_weights(tmp_path / "source.weights.h5")
    before = source.get_layer("stage2_block1_conv1").get_weights()[0]
    arguments = ["decathlon", "train", "--source", str(tmp_path / "source.weights.h5"), "--data", str(tmp_path / "dec"),
                 "--domains", "dtd,svhn", "--epochs", "1", "--batch-size", "3", "--width-factor", "0.25",
                 "--verbose", "0"]
    assert main(arguments + ["--mode", "parallel", "--out", str(tmp_path / "parallel")]) == 0
    results = json.loads((tmp_path / "parallel" / "results.json").read_text())
    assert set(results["domains"]) == {"dtd", "svhn"}
    assert results["domains"]["svhn"]["val_images"] == 3 and results["budget"]["multiplier"] > 1
    assert (tmp_path / "parallel" / "dtd.pack.h5").exists()
    assert main(arguments + ["--mode", "finetune", "--out", str(tmp_path / "finetune")]) == 0
    finetune = json.loads((tmp_path / "finetune" / "results.json").read_text())["domains"]["dtd"]
    parallel = results["domains"]["dtd"]
    assert finetune["trainable_parameters"] > 5 * parallel["trainable_parameters"]
    np.testing.assert_array_equal(source.get_layer("stage2_block1_conv1").get_weights()[0], before)
    assert main(arguments + ["--mode", "parallel", "--out", str(tmp_path / "parallel")]) == 2  # never overwritten
