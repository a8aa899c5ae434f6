"""The package as a user installs it: a wheel in a fresh virtual environment (no checkout on the path, no
editable install), its releases fetched from a local HTTP server standing in for the release assets."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from helpers import serve_directory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "wrn-16-1.cifar10-jpeg-e10"

# Run by the wheel's Python, outside the checkout: load the release by name, evaluate the bundled sample
# from raw 0-255 images, and print what was used.
USE = """
import json, os, sys
import numpy as np
import keras_wrn
from keras_wrn.data import load_data
from keras_wrn.weights import cache_dir, resolve_weights, weights_info

model = keras_wrn.create_model(sys.argv[1])
arrays = load_data("cifar10-jpeg-sample", splits=("test",))
images, labels = arrays["x_test"], arrays["y_test"]
assert images.dtype == np.uint8 and images.max() > 200  # raw pixels, not normalised ones
error = float(np.mean(np.argmax(model.predict(images.astype("float32"), verbose=0), -1) != labels))
recorded = next(m["top1_error"] for m in weights_info(sys.argv[1])["metrics"] if m["data"] == "cifar10-jpeg-sample")
print(json.dumps(dict(package=keras_wrn.__file__, path=[os.path.abspath(p) for p in sys.path], weights=resolve_weights(sys.argv[1])[0],
                      cache=cache_dir(), error=error, recorded=recorded, listed=keras_wrn.list_weights())))
"""


def _copy_sources(destination):
    ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "demo_out",
                                    "runs", ".pytest_cache")
    shutil.copytree(ROOT, destination, ignore=ignore)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``(python, work_dir)``: a fresh venv holding only the wheel, the test venv's packages as dependencies."""
    root = tmp_path_factory.mktemp("wheel")
    _copy_sources(root / "src")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(root / "dist"), str(root / "src")], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (root / "dist").glob("keras_wrn-*.whl")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=300)
    python = root / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # Dependencies (TensorFlow, Keras, ...) from the test environment: a path line, whose own .pth files
    # (the checkout's editable install among them) Python does not process.
    with open(os.path.join(purelib, "test-environment.pth"), "w") as stream:
        stream.write(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", purelib,
                              str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    work = root / "work"
    work.mkdir()
    return str(python), work


def use(installed, env_changes, name=NAME):
    python, work = installed
    env = {key: value for key, value in os.environ.items()
           if key not in ("KERAS_WRN_WEIGHTS_DIR", "KERAS_WRN_WEIGHTS_URL", "PYTHONPATH")}
    env.update(env_changes, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([python, "-c", USE, name], cwd=work, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_a_wheel_loads_releases_by_url_then_from_the_cache(installed, tmp_path):
    home = str(tmp_path / "keras-home")
    with serve_directory(os.path.join(ROOT, "weights")) as url:
        first = use(installed, dict(KERAS_HOME=home, KERAS_WRN_WEIGHTS_URL=url))
    assert first.returncode == 0, first.stderr[-3000:]
    report = json.loads(first.stdout.strip().splitlines()[-1])
    python, _ = installed
    assert report["package"].startswith(os.path.dirname(os.path.dirname(python)))  # the wheel, not the checkout
    assert ROOT not in report["path"]  # only the test environment's dependencies, below .venv
    assert report["weights"].startswith(report["cache"]) and report["cache"].startswith(home)
    assert NAME in report["listed"] and len(report["listed"]) >= 4  # the manifest travels in the wheel
    assert round(report["error"], 6) == report["recorded"]  # raw images, the manifest's error

    again = use(installed, dict(KERAS_HOME=home, KERAS_WRN_WEIGHTS_URL=url))  # the server is stopped now
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout.strip().splitlines()[-1])["error"] == report["error"]


@pytest.mark.slow
def test_a_wheel_refuses_a_corrupted_download(installed, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    file = f"{NAME}.weights.h5"
    with open(os.path.join(ROOT, "weights", file), "rb") as stream:
        content = bytearray(stream.read())
    content[1000] ^= 0x01
    (served / file).write_bytes(bytes(content))
    home = tmp_path / "keras-home"
    with serve_directory(served) as url:
        out = use(installed, dict(KERAS_HOME=str(home), KERAS_WRN_WEIGHTS_URL=url))
    assert out.returncode != 0
    assert f"{url}{file} served a file with sha256" in out.stderr and "nothing was cached" in out.stderr
    cache = home / "models" / "keras_wrn"
    assert not cache.exists() or list(cache.iterdir()) == []


@pytest.mark.slow
def test_a_wheel_offline_without_a_cache_says_what_to_do(installed, tmp_path):
    with serve_directory(tmp_path) as url:
        pass
    out = use(installed, dict(KERAS_HOME=str(tmp_path / "keras-home"), KERAS_WRN_WEIGHTS_URL=url))
    assert out.returncode != 0 and "put the file at" in out.stderr and url in out.stderr
