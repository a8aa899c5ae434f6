"""The Decathlon score reproduces every published row within 2 points."""

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
