import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Separators time their layers' operator forms once per machine and cache the
# result; tests keep the fixed forms (and the user's cache untouched) unless
# they turn timing on themselves (tests/test_autotune.py).
os.environ.setdefault("KERAS_SEP_TUNE", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Spleeter 2.4.2's own outputs on a one-second excerpt of its example song,
# committed with the tests (made by scripts/make_parity_fixtures.py).
SPLEETER_EXCERPT = os.path.join(os.path.dirname(__file__), "data", "spleeter_2stems_excerpt.npz")


def spleeter_reference():
    """The arrays of :data:`SPLEETER_EXCERPT`, the network's spectrograms
    zero-padded back to Spleeter's full chunk (the fixture drops the zeros)."""
    with np.load(SPLEETER_EXCERPT) as data:
        arrays = {name: data[name] for name in data.files}
    frames = int(arrays.pop("chunk_frames"))
    for name in ("mix_spectrogram", "vocals_spectrogram", "accompaniment_spectrogram"):
        value = arrays[name]
        arrays[name] = np.pad(value, ((0, 0), (0, frames - value.shape[1]), (0, 0), (0, 0)))
    return arrays


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts in float32 with fixed seeds, whatever the last one set."""
    import keras

    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
