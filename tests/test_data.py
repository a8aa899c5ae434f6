"""Loaders on small files written here in the real formats; archives; augmentation."""

import io
import os
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from helpers import SHARED_ARCHIVE, needs_shared_cifar10, write_cifar_batch
from keras_wrn.data import (
    augment_fn,
    extract_archive,
    load_cifar,
    make_dataset,
    normalize,
)


@pytest.fixture
def cifar10_dir(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    expected = {"train": [], "test": []}
    for name, split in [(f"data_batch_{i}", "train") for i in range(1, 6)] + [("test_batch", "test")]:
        images = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=3)
        write_cifar_batch(root / name, images, labels)
        expected[split].append((images, labels))
    return tmp_path, expected


def test_cifar10_loads_in_order(cifar10_dir):
    parent, expected = cifar10_dir
    for split in ("train", "test"):
        images, labels = load_cifar("cifar10", split, directory=parent)
        np.testing.assert_array_equal(images, np.concatenate([e[0] for e in expected[split]]))
        np.testing.assert_array_equal(labels, np.concatenate([e[1] for e in expected[split]]))
        assert images.dtype == np.uint8 and labels.dtype == np.int32
    # The batch directory itself works too.
    assert load_cifar("cifar10", "test", directory=parent / "cifar-10-batches-py")[0].shape == (3, 32, 32, 3)


def test_cifar100_fine_labels(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    images = np.zeros((2, 32, 32, 3), np.uint8)
    write_cifar_batch(root / "test", images, [99, 5], label_key=b"fine_labels")
    assert list(load_cifar("cifar100", "test", directory=tmp_path)[1]) == [99, 5]


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickle_with_code_is_refused(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    with open(root / "test_batch", "wb") as handle:
        pickle.dump({b"data": _Exploit(), b"labels": [0]}, handle, protocol=2)
    with pytest.raises(ValueError, match=r"test_batch: not a CIFAR python batch.*posix.system|system"):
        load_cifar("cifar10", "test", directory=tmp_path)


@pytest.mark.parametrize(
    "content,message",
    [
        ([1, 2, 3], "expected a dict with b'data'"),
        ({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, r"shape \(N, 3072\)"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "labels out of range"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "must hold 2 integer labels"),
    ],
)
def test_wrong_content_is_refused(tmp_path, content, message):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    with open(root / "test_batch", "wb") as handle:
        pickle.dump(content, handle, protocol=2)
    with pytest.raises(ValueError, match=message):
        load_cifar("cifar10", "test", directory=tmp_path)


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"looked for: .*cifar-10-batches-py/test_batch.*cifar-10-python"):
        load_cifar("cifar10", "test", directory=tmp_path)
    with pytest.raises(ValueError, match="dataset='mnist'"):
        load_cifar("mnist")
    with pytest.raises(ValueError, match="split='val'"):
        load_cifar("cifar10", "val")


def test_archives_extract_and_refuse_escapes(tmp_path):
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        data = b"hello"
        info = tarfile.TarInfo("train/cat/0000.jpg")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    out = extract_archive(good, tmp_path / "out")
    assert (tmp_path / "out" / "train" / "cat" / "0000.jpg").read_bytes() == b"hello"
    assert out == str(tmp_path / "out")

    bad = tmp_path / "bad.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="bad.tar: unsafe member refused"):
        extract_archive(bad, tmp_path / "out2")
    assert not (tmp_path / "escaped.txt").exists()

    bad_zip = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad_zip, "w") as zipped:
        zipped.writestr("../../evil.txt", "x")
    with pytest.raises(ValueError, match="unsafe member '../../evil.txt'"):
        extract_archive(bad_zip, tmp_path / "out3")
    with pytest.raises(ValueError, match="neither a tar nor a zip"):
        extract_archive(__file__, tmp_path / "out4")


def test_normalize():
    image = np.full((2, 2, 3), 128, np.uint8)
    out = normalize(image, (128.0, 0.0, 64.0), (1.0, 2.0, 32.0)).numpy()
    np.testing.assert_allclose(out[0, 0], [0.0, 64.0, 2.0])


@pytest.mark.parametrize("kind", ["wrn", "preact", "translate"])
def test_pad_crop_flip_is_a_window_of_the_padded_image(kind):
    image = tf.constant(np.random.default_rng(1).normal(size=(32, 32, 3)), tf.float32)
    mode = "CONSTANT" if kind == "preact" else "REFLECT"
    padded = tf.pad(image, [[4, 4], [4, 4], [0, 0]], mode=mode).numpy()
    offsets, flips = set(), 0
    for step in range(40):
        out = augment_fn(kind)(image, tf.constant([7, step], tf.int64)).numpy()
        assert out.shape == (32, 32, 3)
        found = None
        for flipped in (False, True):
            candidate = out[:, ::-1] if flipped else out
            for dy in range(9):
                for dx in range(9):
                    if np.array_equal(padded[dy:dy + 32, dx:dx + 32], candidate):
                        found = (dy, dx, flipped)
        assert found is not None, "output is not a (flipped) 32x32 window of the padded image"
        offsets.add(found[:2])
        flips += found[2]
    assert len(offsets) > 10
    assert flips == 0 if kind == "translate" else 5 < flips < 35  # translate never mirrors (digits)
    if kind == "preact":
        assert padded[0, 0].tolist() == [0.0, 0.0, 0.0]  # zero padding of the normalised image


def test_unknown_augmentation():
    with pytest.raises(ValueError, match="augmentation='cutout'"):
        augment_fn("cutout")


def test_dataset_batches_values_and_reproducibility():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(10, dtype=np.int32)
    mean, std = (127.5,) * 3, (127.5,) * 3
    plain = list(make_dataset(images, labels, 4, mean, std))
    assert [b[0].shape[0] for b in plain] == [4, 4, 2]
    np.testing.assert_allclose(plain[0][0].numpy(), (images[:4] - 127.5) / 127.5, rtol=1e-6)
    run = lambda: [b for b in make_dataset(images, labels, 4, mean, std, "wrn", shuffle=True, seed=3)]
    first, second = run(), run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0].numpy(), b[0].numpy())
    assert sorted(np.concatenate([b[1].numpy() for b in first]).tolist()) == list(range(10))
    values = np.concatenate([b[0].numpy() for b in first])
    assert values.min() >= -1.0 - 1e-6 and values.max() <= 1.0 + 1e-6


@needs_shared_cifar10
@pytest.mark.slow
def test_real_cifar10_jpeg_test_split(tmp_path):
    from keras_wrn.data import load_data

    assert os.path.exists(SHARED_ARCHIVE), "CI must have ../shared/data/cifar10-jpeg.tar.gz"
    extract_archive(SHARED_ARCHIVE, tmp_path)
    data = load_data(tmp_path)
    assert data["class_names"] == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                   "ship", "truck"]
    assert data["x_train"].shape == (50_000, 32, 32, 3) and data["x_test"].shape == (10_000, 32, 32, 3)
    assert np.bincount(data["y_test"]).tolist() == [1000] * 10
    # The data README's per-channel train statistics were computed with Pillow;
    # TensorFlow's JPEG decoder (used by image_dataset_from_directory) gives
    # means about 1.1-1.3 lower on R and B (measured: 124.14, 122.9, 112.57).
    np.testing.assert_allclose(data["x_train"].reshape(-1, 3).mean(0), [125.27, 122.93, 113.86], atol=1.5)
    np.testing.assert_allclose(data["x_train"].reshape(-1, 3).std(0), [62.53, 61.91, 66.46], atol=1.5)
