"""A-weighted loudness in dB, frame by frame (DDSP's loudness feature).

The loudness of frame ``t`` (centred on sample ``t * frame_step``) is the
mean over frequency bins of the A-weighted power spectrum, in dB, floored
``range_db`` below ``ref_db``. Computed in float32 with dynamic batch and
length, so it can run inside a model.
"""
import math

import tensorflow as tf

from keras_sep.ops import spectra
from keras_sep.ops import stft as stft_ops
from keras_sep.ops.synthesis import _check_frame_step, _check_sample_rate


def a_weighting_db(frequencies, min_db=-80.0):
    """The A-weighting curve (IEC 61672) in dB at ``frequencies`` (Hz),
    floored at ``min_db`` (None: no floor); 0 dB at 1 kHz.

    Example:

    >>> import numpy as np
    >>> np.round(a_weighting_db(np.array([100.0, 1000.0, 10000.0], "float32")).numpy(), 1)
    array([-19.1,   0. ,  -2.5], dtype=float32)
    """
    f2 = tf.square(tf.cast(frequencies, tf.float64))
    c = [20.598997**2, 107.65265**2, 737.86223**2, 12194.217**2]
    gain = c[3] * f2**2 / ((f2 + c[0]) * tf.sqrt((f2 + c[1]) * (f2 + c[2])) * (f2 + c[3]))
    # 2.0 dB normalises the curve to 0 dB at 1 kHz; log10(0) at 0 Hz is -inf, which the floor catches.
    weight = 2.0 + 20.0 * tf.math.log(gain) / math.log(10.0)
    if min_db is not None:
        weight = tf.maximum(weight, min_db)
    return tf.cast(weight, tf.float32)


def loudness_db(audio, sample_rate, frame_step, frame_length=512, ref_db=0.0, range_db=80.0):
    """A-weighted loudness in dB, one value per ``frame_step`` samples.

    Centred Hann-windowed STFT frames, power, A-weighting, mean over the
    bins, ``10 log10``, minus ``ref_db``, floored at ``-range_db``: DDSP's
    ``compute_loudness`` since its v2 (the defaults are its own: a 512-point
    FFT, ``ref_db=0``, an 80 dB range).

    Args:
        audio: ``(batch, samples, 1)`` (more channels are averaged in power).
        sample_rate: in Hz.
        frame_step: samples between frames.
        frame_length: STFT window and FFT size (32 ms at 16 kHz).
        ref_db: the dB value that reads as 0.
        range_db: how far below ``ref_db`` the floor is.

    Returns:
        float32 ``(batch, samples // frame_step, 1)``: frame ``t`` is centred
        on sample ``t * frame_step``, as the synthesisers' controls are.

    Example:

    A full-scale 1 kHz sine, whose A-weighting is 0 dB:

    >>> import numpy as np
    >>> t = np.arange(16000) / 16000
    >>> sine = np.sin(2 * np.pi * 1000 * t).astype("float32")[None, :, None]
    >>> loudness = loudness_db(sine, 16000, frame_step=64)
    >>> loudness.shape
    TensorShape([1, 250, 1])
    >>> # Parseval: the bins' power sums to 512 * sum(window² sine²) / 2, about 2.5e4, over 257 bins
    >>> round(float(loudness[0, 125, 0]), 1)
    19.8
    >>> float(loudness_db(np.zeros((1, 640, 1), "float32"), 16000, 64)[0, 0, 0])
    -80.0
    """
    sample_rate = _check_sample_rate(sample_rate)
    frame_step = _check_frame_step(frame_step)
    spectrum = stft_ops.stft(audio, frame_length, frame_step, center=True)  # (batch, frames, bins, ch)
    power = tf.reduce_mean(spectra.magnitude(spectrum, 2.0), axis=-1)  # (batch, frames, bins)
    frequencies = tf.linspace(0.0, sample_rate / 2.0, frame_length // 2 + 1)
    weighting = 10.0 ** (a_weighting_db(frequencies) / 10.0)
    mean_power = tf.reduce_mean(power * weighting, axis=-1, keepdims=True)
    floor = 10.0 ** (-range_db / 10.0)  # also keeps log10 and its gradient finite at silence
    decibels = 10.0 * tf.math.log(tf.maximum(mean_power, floor)) / math.log(10.0) - ref_db
    decibels = tf.maximum(decibels, -range_db)
    frames = tf.shape(audio)[1] // frame_step
    return decibels[:, :frames]
