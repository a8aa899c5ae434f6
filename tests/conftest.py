import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Tests never touch the user's Keras cache nor the network: a cache of their own, and a weights URL on
# a local port where nothing listens (tests that download start their own server, helpers.serve_directory).
_SCRATCH = tempfile.mkdtemp(prefix="keras-wrn-tests-")
atexit.register(shutil.rmtree, _SCRATCH, True)
os.environ["KERAS_HOME"] = os.path.join(_SCRATCH, "keras-home")
os.environ["KERAS_WRN_WEIGHTS_URL"] = "http://127.0.0.1:9/keras-wrn-tests-no-server/"

import gc  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras_wrn  # noqa: E402,F401

# TensorFlow, Keras and keras_wrn leave about 430,000 objects alive for the whole session; a full
# collection walks them all (0.2 s alone, about 0.9 s on a loaded 2-core host), and clear_session below
# runs one after every test. Freezing them (Python's permanent generation) keeps each collection to
# what the tests themselves made.
gc.collect()
gc.freeze()

# The smallest member of each family, for tests that need to build and run many models.
TINY = {
    "wrn": dict(family="create_wide_residual_network", depth=10, width=1),
    "preact_basic": dict(family="create_pre_activation_resnet", depth=8, block_type="basic"),
    "preact_bottleneck": dict(family="create_pre_activation_resnet", depth=11, block_type="bottleneck"),
    "ror": dict(family="create_residual_of_residual", depth=14),
    "pre_ror": dict(family="create_pre_residual_of_residual", depth=10, width=2),
}


def build_tiny(kind, **kwargs):
    import keras_wrn

    arguments = dict(TINY[kind])
    builder = getattr(keras_wrn, arguments.pop("family"))
    arguments.update(kwargs)
    return builder(**arguments)


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session()


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 32, 32, 3)).astype("float32")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only with KERAS_WRN_SLOW=1 (CI sets it; see .ci/run)."""
    if os.environ.get("KERAS_WRN_SLOW") == "1" or config.getoption("-m"):
        return
    skip = pytest.mark.skip(reason="slow: run with KERAS_WRN_SLOW=1 (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
