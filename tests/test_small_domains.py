"""The bundled small real domains and the adapter-mode comparison on them."""

import json

import numpy as np
import pytest

from keras_wrn.data import load_small_domain


def test_digits_resized_stratified_and_on_the_0_255_scale():
    from sklearn.datasets import load_digits

    data = load_small_domain("digits", image_size=24, test_fraction=0.25, seed=3)
    assert data.x_train.shape == (1347, 24, 24, 3) and data.x_test.shape == (450, 24, 24, 3)
    assert data.x_train.dtype == np.uint8 and data.x_train.max() == 255 and data.x_train.min() == 0
    np.testing.assert_array_equal(data.x_train[..., 0], data.x_train[..., 2])  # greyscale replicated
    # stratified: every class keeps its share in both splits
    counts = np.bincount(load_digits().target)
    np.testing.assert_allclose(np.bincount(data.y_test), counts * 0.25, atol=1)
    assert data.class_names == [str(c) for c in range(10)] and data.augmentation == "translate"
    again = load_small_domain("digits", image_size=24, test_fraction=0.25, seed=3)
    np.testing.assert_array_equal(again.x_test, data.x_test)


def test_digits_resize_keeps_the_picture():
    """Each 32x32 test image, averaged back over 4x4 cells, correlates with its own 8x8 original."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    data = load_small_domain("digits", image_size=32, test_fraction=0.5, seed=0)
    _, test_index = train_test_split(np.arange(len(bunch.target)), test_size=0.5, stratify=bunch.target,
                                     random_state=0)
    np.testing.assert_array_equal(data.y_test, bunch.target[test_index])
    pooled = data.x_test[:50, :, :, 0].reshape(50, 8, 4, 8, 4).mean(axis=(2, 4)).reshape(50, -1)
    originals = bunch.images[test_index[:50]].reshape(50, -1)
    correlations = [np.corrcoef(p, o)[0, 1] for p, o in zip(pooled, originals)]
    assert min(correlations) > 0.9


def test_lfw_faces_two_balanced_classes():
    data = load_small_domain("lfw-faces", image_size=32)
    assert data.x_train.shape == (150, 32, 32, 3) and data.x_test.shape == (50, 32, 32, 3)
    assert np.bincount(data.y_test).tolist() == [25, 25] and data.class_names == ["non-face", "face"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="domain 'mnist' is not a bundled small domain"):
        load_small_domain("mnist")
    with pytest.raises(ValueError, match="image_size=4"):
        load_small_domain("digits", image_size=4)
    with pytest.raises(ValueError, match="test_fraction=1.5"):
        load_small_domain("digits", test_fraction=1.5)


@pytest.mark.slow
def test_compare_modes_end_to_end(tmp_path):
    """Two modes on both domains: the table's checks hold (shared weights untouched, merge exact)."""
    from keras_wrn.adapters import resnet26
    from keras_wrn.cli import main

    source = resnet26(10, (16, 16, 3), width_factor=0.25, compile=False)
    source.save_weights(tmp_path / "source.weights.h5")
    arguments = ["decathlon", "compare", "--source", str(tmp_path / "source.weights.h5"), "--width-factor", "0.25",
                 "--image-size", "16", "--epochs", "1", "--modes", "scratch,parallel", "--out", str(tmp_path / "out")]
    assert main(arguments) == 0
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    rows = {(row["mode"], row["domain"]): row for row in summary["rows"]}
    assert set(rows) == {(m, d) for m in ("scratch", "parallel") for d in ("digits", "lfw-faces")}
    parallel = rows["parallel", "digits"]
    assert parallel["shared_unchanged"] is True
    assert parallel["accuracy_after_all"] == parallel["test_accuracy"]
    assert rows["parallel", "lfw-faces"]["accuracy_after_all"] == rows["parallel", "lfw-faces"]["test_accuracy"]
    assert parallel["merged_accuracy"] == pytest.approx(parallel["test_accuracy"], abs=1e-6) and parallel["merged_max_abs_logit_diff"] < 1e-3
    assert parallel["merged_parameters"] == resnet26(10, (16, 16, 3), width_factor=0.25, compile=False).count_params()
    plain = source.count_params()
    assert summary["source_parameters"] == plain
    scratch_total = plain + sum(rows["scratch", d]["domain_parameters"] for d in ("digits", "lfw-faces"))
    assert summary["budget"]["scratch"] == pytest.approx(scratch_total / plain)
    assert 1.0 < summary["budget"]["parallel"] < 1.5 < summary["budget"]["scratch"]
    table = (tmp_path / "out" / "results.md").read_text()
    assert table.count("\n| digits") == 2 and "| parallel |" in table
    assert main(arguments) == 2  # results never overwritten


def test_compare_modes_refusals(tmp_path):
    from keras_wrn.decathlon import compare_modes

    with pytest.raises(ValueError, match="mode 'adapters' is not allowed"):
        compare_modes("x.weights.h5", tmp_path, modes=("adapters",))
    with pytest.raises(ValueError, match="domain 'svhn' is not a bundled small domain"):
        compare_modes("x.weights.h5", tmp_path, domains=("svhn",))
    with pytest.raises(ValueError, match="holds a wrn-16-1 network; the adapter modes need a plain ResNet-26"):
        compare_modes("wrn-16-1.cifar10-jpeg-e10", tmp_path)
