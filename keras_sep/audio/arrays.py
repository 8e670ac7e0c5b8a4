"""Audio arrays: the float32 ``(samples, channels)`` convention, checked, and resampling.

Every waveform keras_sep reads or is handed passes :func:`check_waveform`,
so code downstream can count on float32, two axes, at least one sample and
finite values.
"""
import numpy as np
import soxr

from keras_sep.audio.errors import AudioError


def check_waveform(waveform, name="<array>"):
    """Return ``waveform`` as float32 ``(samples, channels)`` or raise AudioError.

    A 1-D array is one channel. Integers are PCM: signed ones are divided by
    2^(bits-1), unsigned ones centred on their middle value first (as
    libsndfile reads 8-bit WAV). NaN or infinite samples are rejected: a mask
    estimated from them would be NaN everywhere, silently.

    Args:
        waveform: array-like ``(samples,)`` or ``(samples, channels)``.
        name: what the error messages call it (a file name, "<array>").
    """
    array = np.asarray(waveform)
    if array.dtype.kind not in "fiu":
        raise AudioError(f"{name}: audio must be numeric, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise AudioError(
            f"{name}: audio must be (samples, channels), got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise AudioError(f"{name}: audio is empty (shape {array.shape})")
    if array.dtype.kind == "i":  # PCM as libsndfile and FFmpeg scale it: full scale is 2^(bits-1)
        array = array / float(-np.iinfo(array.dtype).min)
    elif array.dtype.kind == "u":  # unsigned PCM (8-bit WAV): silence is the middle value
        half = float(np.iinfo(array.dtype).max // 2 + 1)
        array = (array - half) / half
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    return array


def resample(waveform, sample_rate, target_rate):
    """Resample ``(samples, channels)`` with soxr (high quality).

    The array comes back unchanged when the rates are equal.
    """
    if int(sample_rate) == int(target_rate):
        return waveform
    return np.ascontiguousarray(
        soxr.resample(waveform, int(sample_rate), int(target_rate), quality="HQ"),
        dtype=np.float32,
    )
