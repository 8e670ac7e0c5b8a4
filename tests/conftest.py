import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Separators time their layers' operator forms once per machine and cache the
# result; tests keep the fixed forms (and the user's cache untouched) unless
# they turn timing on themselves (tests/test_autotune.py).
os.environ.setdefault("KERAS_SEP_TUNE", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
SPLEETER_DATA = os.path.join(SHARED, "data", "spleeter_2stems")


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts in float32 with fixed seeds, whatever the last one set."""
    import keras

    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
