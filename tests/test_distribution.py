"""Released weights outside the checkout: the order a name resolves in (releases folder, cache, download),
hash checks of downloads, offline errors, `keras-wrn weights download`, and the manifest's file names."""

import json
import os
import shutil

import pytest

from helpers import serve_directory
from keras_wrn import weights
from keras_wrn.io import sha256_file
from keras_wrn.cli import main

NAME = "wrn-16-1.cifar10-jpeg-e10"
CHECKOUT_WEIGHTS = weights.weights_dir()


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """An empty releases folder and a fresh KERAS_HOME: a release must come from the server or the cache."""
    monkeypatch.setenv("KERAS_WRN_WEIGHTS_DIR", str(tmp_path / "releases"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    monkeypatch.delenv("KERAS_WRN_WEIGHTS_URL", raising=False)
    (tmp_path / "releases").mkdir()
    return tmp_path


def cached(name=NAME):
    return os.path.join(weights.cache_dir(), weights.weights_info(name)["file"])


def test_the_cache_is_under_keras_home(outside):
    assert weights.cache_dir() == str(outside / "keras-home" / "models" / "keras_wrn")


def test_download_then_cache_then_releases_folder(outside, monkeypatch):
    entry = weights.weights_info(NAME)
    with serve_directory(CHECKOUT_WEIGHTS) as url:
        monkeypatch.setenv("KERAS_WRN_WEIGHTS_URL", url)
        path, _ = weights.resolve_weights(NAME)
    assert path == cached() and sha256_file(path) == entry["sha256"]
    assert os.listdir(weights.cache_dir()) == [entry["file"]]  # no leftovers of the download
    # Server gone: the cache answers.
    assert weights.resolve_weights(NAME)[0] == cached()
    # A file in the releases folder comes first.
    local = outside / "releases" / entry["file"]
    shutil.copyfile(path, local)
    assert weights.resolve_weights(NAME)[0] == str(local)


def test_base_url_argument_beats_the_environment(outside, monkeypatch):
    monkeypatch.setenv("KERAS_WRN_WEIGHTS_URL", "http://127.0.0.1:9/nothing-here/")
    with serve_directory(CHECKOUT_WEIGHTS) as url:
        assert weights.resolve_weights(NAME, base_url=url)[0] == cached()


def test_origin_is_the_default_url(outside):
    entry = weights.weights_info(NAME)
    assert weights.weights_url(entry) == entry["origin"] == weights.RELEASES_URL + entry["file"]
    assert weights.weights_url(entry, "http://host/x/") == "http://host/x/" + entry["file"]


def test_a_corrupted_download_is_refused_and_not_cached(outside, monkeypatch, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    entry = weights.weights_info(NAME)
    with open(os.path.join(CHECKOUT_WEIGHTS, entry["file"]), "rb") as stream:
        content = bytearray(stream.read())
    content[len(content) // 2] ^= 0xFF  # same size, one byte flipped
    (served / entry["file"]).write_bytes(bytes(content))
    with serve_directory(served) as url:
        with pytest.raises(ValueError) as error:
            weights.resolve_weights(NAME, base_url=url)
    message = str(error.value)
    assert url + entry["file"] in message and "sha256" in message and entry["sha256"] in message
    assert "nothing was cached" in message
    assert not os.path.exists(cached()) and os.listdir(weights.cache_dir()) == []


def test_offline_without_a_cache_says_where_to_put_the_file(outside):
    with serve_directory(outside) as url:
        pass  # the server is stopped: connections are refused
    with pytest.raises(FileNotFoundError) as error:
        weights.resolve_weights(NAME, base_url=url)
    message = str(error.value)
    assert url + weights.weights_info(NAME)["file"] in message
    assert cached() in message and "put the file at" in message
    assert not os.path.exists(cached())


def test_a_damaged_cache_entry_is_downloaded_again(outside):
    os.makedirs(weights.cache_dir())
    with open(cached(), "wb") as stream:
        stream.write(b"truncated")
    with serve_directory(CHECKOUT_WEIGHTS) as url:
        path, entry = weights.resolve_weights(NAME, base_url=url)
    assert sha256_file(path) == entry["sha256"]


def test_a_damaged_file_in_the_releases_folder_is_an_error(outside):
    entry = weights.weights_info(NAME)
    (outside / "releases" / entry["file"]).write_bytes(b"not the release")
    with pytest.raises(ValueError, match="restore it or delete it"):
        weights.resolve_weights(NAME)


def test_weights_download_command_fills_the_cache(outside, capsys):
    names = ["wrn-16-1.cifar10-jpeg-e10", "preact-20.cifar10-jpeg-e15"]
    with serve_directory(CHECKOUT_WEIGHTS) as url:
        assert main(["weights", "download", *names, "--url", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in names:
        assert f"{name}: {cached(name)}" in lines
        assert os.path.isfile(cached(name))


def test_weights_download_of_an_unknown_name_fetches_nothing(outside, capsys):
    assert main(["weights", "download", NAME, "wrn-99-1.nowhere"]) == 2
    assert "wrn-99-1.nowhere" in capsys.readouterr().err
    assert not os.path.exists(weights.cache_dir())


@pytest.mark.parametrize("file", ["/etc/passwd", "../../x.weights.h5", "sub/x.weights.h5", ".."])
def test_a_manifest_file_outside_its_folder_is_refused(outside, file):
    entry = dict(weights.weights_info(NAME), name="mine", file=file)
    (outside / "releases" / "manifest.json").write_text(json.dumps({"format": 1, "weights": {"mine": entry}}))
    with pytest.raises(ValueError, match="expected a bare file name"):
        weights.list_weights()


def test_a_releases_folder_manifest_adds_to_the_project_one(outside):
    entry = dict(weights.weights_info(NAME), name="mine")
    (outside / "releases" / "manifest.json").write_text(json.dumps({"format": 1, "weights": {"mine": entry}}))
    assert "mine" in weights.list_weights() and NAME in weights.list_weights()
