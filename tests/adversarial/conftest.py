"""The adversarial tests build many tiny models and networks, one or more per case; the suite's
``_seeded`` fixture ends every test with a full garbage collection (``clear_session()``), which costs
about 0.5 s once TensorFlow is loaded, more than most of these cases take.  Here the session is
cleared without that collection; Python's own collector still runs as usual."""

import keras
import pytest


@pytest.fixture(autouse=True)
def _seeded():
    keras.utils.set_random_seed(1234)
    yield
    keras.backend.clear_session(free_memory=False)
