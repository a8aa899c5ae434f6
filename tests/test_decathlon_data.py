"""Visual Decathlon loader on small files written in the challenge's layout."""

import json
import os
import pickle

import numpy as np
import pytest

from helpers import write_domain
from keras_wrn.data.decathlon import decathlon_dataset, load_decathlon, read_mean_std


@pytest.fixture
def root(tmp_path):
    write_domain(tmp_path, "aircraft", 100)
    write_domain(tmp_path, "svhn", 10)
    stats = {"aircraftmean": np.array([0.48, 0.51, 0.53]), "aircraftstd": [0.2, 0.2, 0.21],
             "svhnmean": [0.44, 0.44, 0.47], "svhnstd": [0.19, 0.19, 0.19]}
    (tmp_path / "decathlon_mean_std.pickle").write_bytes(pickle.dumps(stats, protocol=2))
    return tmp_path


def test_labels_ids_and_unlabelled_test_split(root):
    train = load_decathlon(root, "aircraft", "train")
    assert [os.path.relpath(p, root) for p in train.paths][0] == "data/aircraft/train/0000000.jpg"
    assert list(train.labels) == [0, 1, 2] and list(train.image_ids) == [5000, 5001, 5002]
    assert len(train.category_ids) == 100
    test = load_decathlon(root, "aircraft", "test")
    assert test.labels is None and len(test.paths) == 3


def test_mean_std_pickle_read_safely_and_rescaled(root):
    mean, std = read_mean_std(root, "aircraft")
    np.testing.assert_allclose(mean, [0.48 * 255, 0.51 * 255, 0.53 * 255])
    np.testing.assert_allclose(std, [51.0, 51.0, 0.21 * 255])
    evil = root / "evil.pickle"
    evil.write_bytes(pickle.dumps({"aircraftmean": os.system}))
    with pytest.raises(ValueError, match="evil.pickle: not a Decathlon mean/std pickle .*posix.system|evil.pickle: not a"):
        read_mean_std(evil, "aircraft")
    with pytest.raises(ValueError, match="'dtdmean' must hold 3 numbers"):
        read_mean_std(root, "dtd")


def test_pipeline_sizes_and_values(root):
    mean, std = read_mean_std(root, "aircraft")
    train = load_decathlon(root, "aircraft", "train")
    images, labels = next(iter(decathlon_dataset(train, 3, mean, std, training=True)))
    assert images.shape == (3, 64, 64, 3) and images.dtype.name == "float32"
    assert sorted(labels.numpy().tolist()) == [0, 1, 2]
    assert -3.5 < float(images.numpy().min()) and float(images.numpy().max()) < 3.5
    svhn = load_decathlon(root, "svhn", "val")  # centre 72 crop, no flip
    mean, std = read_mean_std(root, "svhn")
    first = next(iter(decathlon_dataset(svhn, 3, mean, std, training=True, shuffle=False)))[0].numpy()
    again = next(iter(decathlon_dataset(svhn, 3, mean, std, training=False)))[0].numpy()
    assert first.shape == (3, 72, 72, 3)
    np.testing.assert_array_equal(first, again)
    test_images = next(iter(decathlon_dataset(load_decathlon(root, "aircraft", "test"), 3, mean, std)))
    assert test_images.shape == (3, 64, 64, 3)


def edit(root, name, change):
    path = root / "annotations" / name
    content = json.loads(path.read_text())
    change(content)
    path.write_text(json.dumps(content))


def test_unknown_image_id(root):
    edit(root, "aircraft_train.json", lambda c: c["annotations"][1].update(image_id=999))
    with pytest.raises(ValueError, match="aircraft_train.json: annotation 1 refers to image_id 999"):
        load_decathlon(root, "aircraft", "train")


def test_label_out_of_range(root):
    edit(root, "aircraft_val.json", lambda c: c["annotations"][2].update(category_id=7))
    with pytest.raises(ValueError, match="aircraft_val.json: annotation 2 has category_id 7, outside .* 0..99"):
        load_decathlon(root, "aircraft", "val")


def test_wrong_class_count_missing_annotations_and_files(root):
    edit(root, "svhn_train.json", lambda c: c.update(categories=c["categories"][:9]))
    with pytest.raises(ValueError, match="has 9 categories; svhn has 10 classes"):
        load_decathlon(root, "svhn", "train")
    edit(root, "svhn_val.json", lambda c: c.pop("annotations"))
    with pytest.raises(ValueError, match="the val split needs 'annotations'"):
        load_decathlon(root, "svhn", "val")
    with pytest.raises(FileNotFoundError, match="looked for .*dtd_train.json"):
        load_decathlon(root, "dtd", "train")
    with pytest.raises(ValueError, match="domain='mnist' is not allowed"):
        load_decathlon(root, "mnist", "train")
    os.remove(root / "data" / "aircraft" / "train" / "0000002.jpg")
    with pytest.raises(FileNotFoundError, match="0000002.jpg does not exist"):
        load_decathlon(root, "aircraft", "train")
    (root / "annotations" / "aircraft_val.json").write_text("{not json")
    with pytest.raises(ValueError, match="aircraft_val.json: not a JSON annotation file"):
        load_decathlon(root, "aircraft", "val")
