"""Image folders, CIFAR metadata, and bad-input errors of the data paths and `keras-wrn train`."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from keras_wrn.data import cifar_class_names, load_image_folder, make_dataset
from keras_wrn.data import load_data
from helpers import write_cifar_batch
from helpers import write_image_folder

QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def test_folder_labels_follow_sorted_class_names_and_resize(tmp_path):
    import keras

    for name, colour in (("zebra", 200), ("ant", 10)):
        (tmp_path / name).mkdir()
        keras.utils.save_img(str(tmp_path / name / "a.png"), np.full((40, 48, 3), colour, np.uint8), scale=False)
    images, labels, names = load_image_folder(tmp_path, image_size=(32, 32))
    assert names == ["ant", "zebra"] and images.shape == (2, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 1] and images[0].max() == 10 and images[1].min() == 200


def test_directory_without_class_folders_or_images(tmp_path):
    with pytest.raises(ValueError, match="has no class folders"):
        load_image_folder(tmp_path)
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "notes.txt").write_text("no image here")
    with pytest.raises(ValueError, match="no images .* in the class folders of"):
        load_image_folder(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "missing")


def test_corrupt_jpeg_is_named(tmp_path):
    root = write_image_folder(tmp_path / "data", classes=2, train_per_class=3, test_per_class=1)
    bad = root / "train" / "class1" / "0001.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    with pytest.raises(ValueError, match="0001.jpg: not a readable image"):
        load_image_folder(root / "train")


def test_test_split_with_other_classes_is_refused(tmp_path):
    root = write_image_folder(tmp_path / "data", classes=2, train_per_class=2, test_per_class=1)
    os.rename(root / "test" / "class1", root / "test" / "other")
    with pytest.raises(ValueError, match="has class folders \\['class0', 'other'\\], expected \\['class0', 'class1'\\]"):
        load_data(root)


def test_cifar_class_names_from_batches_meta(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names, b"num_vis": 3072}, protocol=2))
    assert cifar_class_names("cifar10", tmp_path)[:3] == ["airplane", "automobile", "bird"]
    assert cifar_class_names("cifar100", tmp_path) == [str(i) for i in range(100)]  # no meta: numbers
    (root / "batches.meta").write_bytes(pickle.dumps({b"label_names": names[:4]}, protocol=2))
    with pytest.raises(ValueError, match="batches.meta: expected a dict with b'label_names', a list of 10 names"):
        cifar_class_names("cifar10", tmp_path)


def test_load_data_reads_cifar_batches_with_names(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        write_cifar_batch(root / name, rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8), [1, 2])
    arrays = load_data(tmp_path)
    assert arrays["x_train"].shape == (10, 32, 32, 3) and arrays["format"] == "cifar10"


def test_reshuffle_flag(tmp_path):
    images = (np.arange(8 * 8 * 8 * 3) % 251).astype(np.uint8).reshape(8, 8, 8, 3)
    labels = np.arange(8)
    fixed = make_dataset(images, labels, 8, (0, 0, 0), (1, 1, 1), "wrn", shuffle=True, seed=3,
                         reshuffle_each_iteration=False)
    first, second = [[b[1].numpy().tolist() for b in fixed] for _ in range(2)]
    assert first == second
    moving = make_dataset(images, labels, 8, (0, 0, 0), (1, 1, 1), "wrn", shuffle=True, seed=3)
    passes = [[b[1].numpy().tolist() for b in moving] for _ in range(4)]
    assert any(p != passes[0] for p in passes[1:])


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--data", "EMPTY"], "has no class folders"),
        (["--data", "DATA", "--recipe", "sgdr"], "recipe='sgdr' does not exist"),
        (["--data", "DATA", "--normalization", "pca"], "invalid choice: 'pca'"),
        (["--data", "DATA", "--epochs", "0"], "argument --epochs: expected an integer >= 1, got 0"),  # the parser
    ],
)
def test_train_cli_bad_input(tmp_path, arguments, message):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "test").mkdir()
    data = write_image_folder(tmp_path / "data", classes=2, train_per_class=2, test_per_class=1)
    arguments = [{"EMPTY": str(tmp_path / "empty"), "DATA": str(data)}.get(a, a) for a in arguments]
    out = subprocess.run([sys.executable, "-m", "keras_wrn", "train", "wrn-16-1", "--out", str(tmp_path / "run")]
                         + arguments, capture_output=True, text=True, env=QUIET, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr
    assert not (tmp_path / "run").exists()
