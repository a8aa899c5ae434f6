"""Adversarial files (issue 14): HDF5 files that read other files (class 4), release names that leave or
overwrite the releases folder (class 2). Each test failed on the main before it."""

import json

import h5py
import numpy as np
import pytest

from keras_wrn.adapters import MultiDomainNetwork
from keras_wrn.convert import from_legacy_keras
from keras_wrn.io import open_hdf5
from keras_wrn.release import release
from keras_wrn.weights import weight_file_classes


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.bin"
    path.write_bytes(np.arange(64, dtype=np.float32).tobytes())
    return path


def external_dataset(path, secret, name="data"):
    with h5py.File(path, "w") as handle:
        handle.create_dataset(name, shape=(64,), dtype="float32", external=[(str(secret), 0, 256)])


@pytest.mark.parametrize("kind", ["external storage", "external link", "virtual dataset"])
def test_4_hdf5_that_reads_other_files_is_refused(tmp_path, secret, kind):
    path = tmp_path / "evil.h5"
    if kind == "external storage":
        external_dataset(path, secret)
    elif kind == "external link":
        external_dataset(tmp_path / "other.h5", secret)
        with h5py.File(path, "w") as handle:
            handle["data"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/data")
    else:
        with h5py.File(tmp_path / "source.h5", "w") as handle:
            handle["x"] = np.zeros(4, "float32")
        layout = h5py.VirtualLayout(shape=(4,), dtype="float32")
        layout[:] = h5py.VirtualSource(str(tmp_path / "source.h5"), "x", shape=(4,))
        with h5py.File(path, "w") as handle:
            handle.create_virtual_dataset("data", layout)
    with pytest.raises(ValueError, match=f"refers to data in other files .*{kind}"):
        with open_hdf5(path):
            pass


def test_4_our_readers_refuse_external_storage(tmp_path, secret):
    pack = tmp_path / "pack.h5"
    external_dataset(pack, secret, "stem_conv_bn/gamma")
    with h5py.File(pack, "a") as handle:
        handle.attrs["meta"] = json.dumps({"format": 1})
    network = MultiDomainNetwork(adapter="parallel", input_shape=(16, 16, 3), width_factor=0.25, compile=False)
    with pytest.raises(ValueError, match="refers to data in other files"):
        network.load_pack(pack)
    assert network.domains == []
    legacy = tmp_path / "legacy.h5"
    external_dataset(legacy, secret, "conv/kernel")
    with h5py.File(legacy, "a") as handle:
        handle.attrs["layer_names"] = [b"conv"]
    with pytest.raises(ValueError, match="refers to data in other files"):
        from_legacy_keras(legacy, "titu1994-wrn")
    weights = tmp_path / "model.weights.h5"
    external_dataset(weights, secret, "layers/dense/vars/1")
    with pytest.raises(ValueError, match="refers to data in other files"):
        weight_file_classes(weights)


@pytest.fixture
def finished_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"model": "wrn-16-1", "epochs": 1}))
    (run / "state.json").write_text(json.dumps({"completed_epochs": 1}))
    return run


@pytest.mark.parametrize("name", ["./wrn-16-1.cifar10-jpeg-e10", "../../x", "a/b", "wrn..x", "", "Wrn-16-1.x"])
def test_2_release_names_cannot_leave_the_folder(finished_run, tmp_path, monkeypatch, name):
    monkeypatch.setenv("KERAS_WRN_WEIGHTS_DIR", str(tmp_path / "releases"))
    with pytest.raises(ValueError, match="is not a release name"):
        release(finished_run, name, "unused")


def test_2_nothing_in_the_releases_folder_is_overwritten(finished_run, tmp_path, monkeypatch):
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "wrn-16-1.mine-e1.weights.h5").write_bytes(b"someone's file")
    monkeypatch.setenv("KERAS_WRN_WEIGHTS_DIR", str(releases))
    with pytest.raises(ValueError, match="exists; nothing in the releases folder is overwritten"):
        release(finished_run, "wrn-16-1.mine-e1", "unused")
    with pytest.raises(ValueError, match="already released"):  # a project release, from another folder
        release(finished_run, "wrn-16-1.cifar10-jpeg-e10", "unused")
    assert (releases / "wrn-16-1.mine-e1.weights.h5").read_bytes() == b"someone's file"
