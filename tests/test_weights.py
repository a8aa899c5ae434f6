"""The released-weights registry: every manifest entry verified, and every failure named."""

import json
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

import keras_wrn
from helpers import SHARED_ARCHIVE, needs_shared_cifar10
from keras_wrn import weights as registry
from keras_wrn.data.datasets import SAMPLE_DIR, SAMPLE_NAME
from keras_wrn.io import sha256_file
from keras_wrn.registry import verify_weights
from keras_wrn.release import release

RELEASED = registry.list_weights()
QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def test_there_is_a_default_release():
    assert RELEASED, "weights/manifest.json lists no releases"
    assert registry.default_weights("wrn-16-1") in RELEASED


@pytest.mark.parametrize("name", RELEASED)
def test_manifest_entry_hash_parameters_and_metadata(name):
    entry = registry.weights_info(name)
    path, _ = registry.resolve_weights(name)
    assert sha256_file(path) == entry["sha256"] and os.path.getsize(path) == entry["size"]
    assert verify_weights(name)["parameters"] == entry["parameters"]
    assert entry["dataset"].startswith("cifar10-jpeg") or entry["dataset"] != "cifar10"
    assert len(entry["class_names"]) == entry["arguments"]["classes"]
    assert entry["metrics"][0]["images"] == 10_000 and entry["provenance"]["command"].startswith("keras-wrn train")


@pytest.mark.parametrize("name", RELEASED)
def test_sample_error_is_reproduced_by_the_recorded_command(name, tmp_path):
    sample = next(m for m in registry.weights_info(name)["metrics"] if m["data"] == SAMPLE_NAME)
    arguments = shlex.split(sample["command"])
    assert arguments[0] == "keras-wrn"
    out = subprocess.run([sys.executable, "-m", "keras_wrn", *arguments[1:], "--json", str(tmp_path / "m.json"),
                          "--confusion", str(tmp_path / "cm.png")],
                         capture_output=True, text=True, env=QUIET, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    measured = json.loads((tmp_path / "m.json").read_text())
    assert measured["images"] == sample["images"]
    assert round(measured["top1_error"], 6) == sample["top1_error"]
    if "tta_command" in sample:  # releases measured with flip TTA too
        tta = shlex.split(sample["tta_command"])
        assert tta[:len(arguments)] == arguments and tta[len(arguments):] == ["--tta", "flip"]
        out = subprocess.run([sys.executable, "-m", "keras_wrn", *tta[1:], "--json", str(tmp_path / "t.json"),
                              "--confusion", str(tmp_path / "cm-tta.png")],
                             capture_output=True, text=True, env=QUIET, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        measured = json.loads((tmp_path / "t.json").read_text())
        assert round(measured["top1_error"], 6) == sample["tta_top1_error"]
        assert round(measured["plain_top1_error"], 6) == sample["top1_error"]


@pytest.fixture
def copied_registry(tmp_path, monkeypatch):
    name = registry.default_weights("wrn-16-1")
    entry = registry.weights_info(name)
    for other in RELEASED:  # the whole registry, so that verify sees every listed file
        file = registry.weights_info(other)["file"]
        shutil.copy(os.path.join(registry.weights_dir(), file), tmp_path / file)
    shutil.copy(os.path.join(registry.weights_dir(), "manifest.json"), tmp_path / "manifest.json")
    monkeypatch.setenv("KERAS_WRN_WEIGHTS_DIR", str(tmp_path))
    return name, tmp_path / entry["file"]


def test_weights_name_in_builders(copied_registry):
    name, path = copied_registry
    model = keras_wrn.create_model("wrn-16-1", weights=name, compile=False)
    direct = keras_wrn.create_wide_residual_network(depth=16, width=1, weights=name, compile=False)
    reference = keras_wrn.create_model("wrn-16-1", compile=False)
    reference.load_weights(path)
    for a, b, c in zip(model.get_weights(), direct.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, c)
    backbone = keras_wrn.create_model("wrn-16-1", weights=name, include_top=False, pooling="avg")
    np.testing.assert_array_equal(backbone.get_layer("stem_conv").get_weights()[0],
                                  reference.get_layer("stem_conv").get_weights()[0])
    assert keras_wrn.create_model("wrn-16-1", weights=name, classes=3).output_shape == (None, 3)


def test_wrong_architecture_names_the_mismatch(copied_registry):
    name, _ = copied_registry
    with pytest.raises(ValueError, match=f"weights={name!r} are for depth=16, but the model has depth=22"):
        keras_wrn.create_wide_residual_network(depth=22, width=1, weights=name)
    with pytest.raises(ValueError, match="were released for create_wide_residual_network, not create_pre_activation_resnet"):
        keras_wrn.create_pre_activation_resnet(depth=20, weights=name)
    with pytest.raises(ValueError, match="weights=.wrn-16-1.imagenet. is neither a released weights name \\(.*wrn-16-1.cifar10-jpeg-e10"):
        keras_wrn.create_model("wrn-16-1", weights="wrn-16-1.imagenet")


def test_truncated_corrupt_and_missing_files(copied_registry):
    name, path = copied_registry
    original = path.read_bytes()
    path.write_bytes(original[: len(original) // 2])
    with pytest.raises(ValueError, match=f"has {len(original) // 2:,} bytes, the manifest expects {len(original):,}"):
        keras_wrn.create_model("wrn-16-1", weights=name)
    corrupt = bytearray(original)
    corrupt[len(corrupt) // 2] ^= 0xFF
    path.write_bytes(bytes(corrupt))
    expected = registry.weights_info(name)["sha256"]
    with pytest.raises(ValueError, match=f"has sha256 [0-9a-f]{{64}}, the manifest expects {expected}"):
        keras_wrn.create_model("wrn-16-1", weights=name)
    os.remove(path)  # nor in the cache, and the server (conftest's KERAS_WRN_WEIGHTS_URL) does not answer
    with pytest.raises(FileNotFoundError, match="downloading .* failed.* put the file at"):
        keras_wrn.create_model("wrn-16-1", weights=name)


@pytest.mark.slow
def test_cli_list_show_verify(copied_registry):
    name, path = copied_registry
    env = dict(QUIET, KERAS_WRN_WEIGHTS_DIR=str(path.parent))
    run = lambda *a: subprocess.run([sys.executable, "-m", "keras_wrn", "weights", *a], capture_output=True,
                                    text=True, env=env, timeout=300)
    listing = run("list")
    assert listing.returncode == 0 and name in listing.stdout and "[default]" in listing.stdout
    assert json.loads(run("show", name).stdout)["name"] == name
    assert run("verify").returncode == 0
    path.write_bytes(path.read_bytes()[:-10])
    failed = run("verify", name)
    assert failed.returncode == 2 and f"FAIL {name}" in failed.stdout


@pytest.mark.parametrize("name", RELEASED)
def test_a_release_holds_the_layers_weights_only(name):
    import h5py

    path, _ = registry.resolve_weights(name)
    with h5py.File(path, "r") as handle:
        assert sorted(handle) == ["layers", "vars"]  # no optimizer state: half the download for momentum SGD


def test_release_of_a_finished_run_writes_its_layers_and_a_manifest_entry(tmp_path, monkeypatch):
    import h5py

    from keras_wrn.training import train

    data = tmp_path / "data"  # ten real classes, so that the release is measured on the bundled sample too
    for split, count in (("train", 3), ("test", 1)):
        for folder in sorted(os.listdir(os.path.join(SAMPLE_DIR, "test"))):
            os.makedirs(data / split / folder)
            for image in sorted(os.listdir(os.path.join(SAMPLE_DIR, "test", folder)))[:count]:
                shutil.copy(os.path.join(SAMPLE_DIR, "test", folder, image), data / split / folder / image)
    train("wrn-16-1", data, tmp_path / "run", epochs=1, batch_size=10, verbose=0)
    monkeypatch.setenv("KERAS_WRN_WEIGHTS_DIR", str(tmp_path / "releases"))
    (tmp_path / "releases").mkdir()
    entry = release(tmp_path / "run", "wrn-16-1.tiny-e1", str(data))
    released = tmp_path / "releases" / "wrn-16-1.tiny-e1.weights.h5"
    assert entry["sha256"] == sha256_file(released) and entry["size"] == os.path.getsize(released)
    assert [metric["images"] for metric in entry["metrics"]] == [10, 1000]

    def layers(path):
        with h5py.File(path, "r") as handle:
            assert "optimizer" not in handle or path.name == "last.weights.h5"
            found = {}
            handle["layers"].visititems(lambda key, item: found.update(
                {key: item[()]} if isinstance(item, h5py.Dataset) else {}))
            return found

    trained, published = layers(tmp_path / "run" / "last.weights.h5"), layers(released)
    assert sorted(published) == sorted(trained) and len(published) > 40
    assert all(np.array_equal(published[key], trained[key]) for key in trained)


def test_release_refuses_existing_names_and_unfinished_runs(copied_registry, tmp_path):
    name, _ = copied_registry
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"model": "wrn-16-1", "epochs": 5}))
    (run / "state.json").write_text(json.dumps({"completed_epochs": 2}))
    with pytest.raises(ValueError, match="already released; releases are immutable"):
        release(run, name, "unused")
    with pytest.raises(ValueError, match="2 of 5 epochs done; finish it first"):
        release(run, "wrn-16-1.new", "unused")


@pytest.mark.slow
def test_verify_full_needs_the_full_split(copied_registry):
    name, path = copied_registry
    env = dict(QUIET, KERAS_WRN_WEIGHTS_DIR=str(path.parent))
    run = lambda *a: subprocess.run([sys.executable, "-m", "keras_wrn", "weights", "verify", name, *a],
                                    capture_output=True, text=True, env=env, timeout=300)
    missing = run("--full")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "--full needs --data" in missing.stderr
    sample = run("--full", "--data", SAMPLE_DIR)
    assert sample.returncode == 2 and "Traceback" not in sample.stderr
    assert f"FAIL {name}: --data {SAMPLE_DIR!r}: its test split has 1,000 images" in sample.stdout


@needs_shared_cifar10
@pytest.mark.slow
def test_verify_full_reproduces_the_full_split_errors(tmp_path, copied_registry):
    """The manifest's full-split errors, re-measured on cifar10-jpeg's 10,000 test images: one release per
    model of the `fast` recipe (plain and flip TTA) and the smallest older one (plain only)."""
    from keras_wrn.data.archives import extract_archive

    name, path = copied_registry
    data = tmp_path / "cifar10-jpeg"
    extract_archive(SHARED_ARCHIVE, data)
    names = [name] + [n for n in RELEASED if registry.weights_info(n)["training"]["recipe"] == "fast"]
    env = dict(QUIET, KERAS_WRN_WEIGHTS_DIR=str(path.parent))
    out = subprocess.run([sys.executable, "-m", "keras_wrn", "weights", "verify", *names, "--full", "--data",
                          str(data)], capture_output=True, text=True, env=env, timeout=1200)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    for release_name in names:
        assert f"ok   {release_name}: cifar10-jpeg test split top1_error: measured" in out.stdout
