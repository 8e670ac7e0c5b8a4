"""Additive (harmonic) synthesis for DDSP, in float32 with dynamic shapes.

Controls live at frame rate: frame ``t`` describes the sound at sample
``t * frame_step``, and ``frames`` frames make ``frames * frame_step``
samples. Frequencies are in Hz, audio is channels-last ``(batch, samples,
1)``.

The phase of a sinusoid is the running sum of its angular frequency. A long
float32 running sum drifts (after a minute at 440 Hz the phase is about
1.7e5 radians, where float32 resolves only 0.016 radians, and the errors of
a million additions pile up), so the sum runs in float64 and is wrapped to
``[0, 2π)`` before it goes back to float32; a harmonic's phase is then its
number times the wrapped fundamental phase.

After Engel et al., "DDSP: Differentiable Digital Signal Processing",
ICLR 2020, and magenta/ddsp's ``core.py`` (the math, not the code).
"""
import math

import tensorflow as tf

from keras_sep.ops import stft as stft_ops


def _check_frame_step(frame_step):
    if int(frame_step) != frame_step or frame_step <= 0:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
    return int(frame_step)


def _check_sample_rate(sample_rate):
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be > 0, got {sample_rate!r}")
    return float(sample_rate)


def exp_sigmoid(x, exponent=10.0, max_value=2.0, threshold=1e-7):
    """DDSP's scaled sigmoid for positive controls (amplitudes, magnitudes).

    ``max_value * sigmoid(x) ** log(exponent) + threshold``: positive, at most
    ``max_value + threshold``, and with a gentle slope over a wide range of
    ``x``, so a network output near 0 means a small amplitude (about
    ``max_value / 2 ** log(exponent)``) that gradients can still move.

    Example:

    >>> import numpy as np
    >>> np.round(exp_sigmoid(np.array([-100.0, 0.0, 100.0], "float32")).numpy(), 4)
    array([0.    , 0.4054, 2.    ], dtype=float32)
    """
    x = tf.cast(x, tf.float32)
    return max_value * tf.math.sigmoid(x) ** math.log(exponent) + threshold


def upsample_linear(controls, frame_step):
    """Frame-rate ``(batch, frames, channels)`` to ``(batch, frames *
    frame_step, channels)`` by linear interpolation between frames (the last
    frame is held).

    Example:

    >>> import numpy as np
    >>> upsample_linear(np.array([[[0.0], [4.0]]], "float32"), 4)[0, :, 0].numpy()
    array([0., 1., 2., 3., 4., 4., 4., 4.], dtype=float32)
    """
    frame_step = _check_frame_step(frame_step)
    controls = tf.cast(controls, tf.float32)
    following = tf.concat([controls[:, 1:], controls[:, -1:]], axis=1)
    ramp = tf.range(frame_step, dtype=tf.float32) / frame_step
    values = controls[:, :, None, :] + (following - controls)[:, :, None, :] * ramp[None, None, :, None]
    return _flatten_frames(values)


def upsample_with_windows(controls, frame_step):
    """Frame-rate ``(batch, frames, channels)`` to ``(batch, frames *
    frame_step, channels)`` by overlapping Hann windows (DDSP's amplitude
    upsampling).

    Frame ``t`` is a periodic Hann window of ``2 * frame_step`` samples
    centred on sample ``t * frame_step``; neighbouring windows sum to one, so
    a constant stays constant and a step becomes a raised-cosine crossfade.
    The last frame is held to the end.

    Example:

    >>> import numpy as np
    >>> out = upsample_with_windows(np.array([[[0.0], [1.0]]], "float32"), 4)
    >>> np.round(out[0, :, 0].numpy(), 3)
    array([0.   , 0.146, 0.5  , 0.854, 1.   , 1.   , 1.   , 1.   ], dtype=float32)
    """
    frame_step = _check_frame_step(frame_step)
    controls = tf.cast(controls, tf.float32)
    frames = tf.shape(controls)[1]
    held = tf.concat([controls, controls[:, -1:]], axis=1)  # (batch, frames + 1, channels)
    window = tf.signal.hann_window(2 * frame_step, periodic=True, dtype=tf.float32)
    windowed = tf.transpose(held, [0, 2, 1])[..., None] * window  # (batch, ch, frames + 1, 2 step)
    signal = stft_ops.overlap_add(windowed, frame_step)  # (batch, ch, (frames + 2) * step)
    # Window t starts at t * step, so its peak sits at (t + 1) * step: drop one step.
    signal = signal[:, :, frame_step : frame_step + frames * frame_step]
    return tf.transpose(signal, [0, 2, 1])


def _flatten_frames(values):
    """``(batch, frames, frame_step, channels)`` to ``(batch, samples, channels)``."""
    shape = tf.shape(values)
    flat = tf.reshape(values, tf.stack([shape[0], shape[1] * shape[2], shape[3]]))
    flat.set_shape([values.shape[0], None, values.shape[3]])
    return flat


def wrapped_phase(frequencies, sample_rate):
    """Running phase ``sum_{k<=n} 2π f[k] / sample_rate``, wrapped to ``[0, 2π)``.

    The sum runs in float64 along axis 1 (the samples) so that it stays
    accurate over minutes of audio; the result is float32.

    Example:

    >>> import numpy as np
    >>> np.round(wrapped_phase(np.full((1, 4, 1), 1000.0, "float32"), 4000)[0, :, 0].numpy(), 4)
    array([1.5708, 3.1416, 4.7124, 0.    ], dtype=float32)
    """
    sample_rate = _check_sample_rate(sample_rate)
    omega = tf.cast(frequencies, tf.float64) * (2.0 * math.pi / sample_rate)
    phase = tf.math.floormod(tf.cumsum(omega, axis=1), 2.0 * math.pi)
    return tf.cast(phase, tf.float32)


def remove_above_nyquist(frequencies, amplitudes, sample_rate):
    """Zero the amplitudes of sinusoids at or above half the sample rate
    (and of negative frequencies), which would alias."""
    sample_rate = _check_sample_rate(sample_rate)
    frequencies = tf.cast(frequencies, tf.float32)
    amplitudes = tf.cast(amplitudes, tf.float32)
    audible = tf.logical_and(frequencies < sample_rate / 2.0, frequencies >= 0.0)
    return tf.where(audible, amplitudes, tf.zeros_like(amplitudes))


def oscillator_bank(frequencies, amplitudes, sample_rate):
    """Sum of sinusoids given at audio rate.

    Sample ``n`` is ``sum_k a[n, k] * sin(phase_k[n])`` with ``phase_k[n] =
    sum_{m<=n} 2π f[m, k] / sample_rate`` (see :func:`wrapped_phase`);
    sinusoids at or above Nyquist are silent.

    Args:
        frequencies: ``(batch, samples, sinusoids)`` in Hz.
        amplitudes: ``(batch, samples, sinusoids)``.
        sample_rate: in Hz.

    Returns:
        float32 ``(batch, samples, 1)``.

    Example:

    >>> import numpy as np
    >>> f = np.array([[[1000.0, 3000.0]] * 4], "float32")  # 3 kHz is Nyquist at 6 kHz: silent
    >>> # phases π/3, 2π/3, π, 4π/3 of the 1 kHz sinusoid
    >>> np.round(oscillator_bank(f, np.ones_like(f), 6000)[0, :, 0].numpy(), 4)
    array([ 0.866,  0.866, -0.   , -0.866], dtype=float32)
    """
    amplitudes = remove_above_nyquist(frequencies, amplitudes, sample_rate)
    phase = wrapped_phase(frequencies, sample_rate)
    return tf.reduce_sum(amplitudes * tf.sin(phase), axis=-1, keepdims=True)


def harmonic_amplitudes(amplitude, distribution, f0, sample_rate):
    """Per-harmonic amplitudes from an overall amplitude and a distribution.

    Harmonics at or above Nyquist are removed first, then the distribution
    is normalised to sum to one, so the amplitude is shared by the harmonics
    that can sound (DDSP's HarmonicSynth controls).

    Args:
        amplitude: ``(batch, frames, 1)``, positive.
        distribution: ``(batch, frames, harmonics)``, positive.
        f0: ``(batch, frames, 1)`` in Hz.
        sample_rate: in Hz.

    Returns:
        float32 ``(batch, frames, harmonics)``.

    Example:

    >>> import numpy as np
    >>> amps = harmonic_amplitudes(np.ones((1, 1, 1), "float32"), np.ones((1, 1, 4), "float32"),
    ...                            np.full((1, 1, 1), 1000.0, "float32"), 6000)
    >>> amps.numpy()[0, 0]
    array([0.5, 0.5, 0. , 0. ], dtype=float32)
    """
    distribution = tf.cast(distribution, tf.float32)
    frequencies = tf.cast(f0, tf.float32) * _harmonic_numbers(distribution)
    distribution = remove_above_nyquist(frequencies, distribution, sample_rate)
    total = tf.reduce_sum(distribution, axis=-1, keepdims=True)
    # All harmonics above Nyquist (or f0 above it): silence, not 0 / 0.
    distribution = tf.math.divide_no_nan(distribution, total)
    return tf.cast(amplitude, tf.float32) * distribution


def _harmonic_numbers(amplitudes):
    count = tf.shape(amplitudes)[-1]
    return tf.cast(tf.range(1, count + 1), tf.float32)


def harmonic_synthesis(f0, amplitudes, sample_rate, frame_step):
    """Harmonic oscillator bank driven at frame rate.

    ``f0`` is upsampled linearly and the amplitudes by overlapping windows
    (:func:`upsample_with_windows`); harmonic ``k`` (1-based) sounds at ``k *
    f0`` with phase ``k`` times the fundamental's wrapped phase, and is
    silent where ``k * f0`` reaches Nyquist.

    Args:
        f0: ``(batch, frames, 1)`` fundamental frequency in Hz.
        amplitudes: ``(batch, frames, harmonics)`` per-harmonic amplitudes
            (see :func:`harmonic_amplitudes`).
        sample_rate: in Hz.
        frame_step: samples per frame.

    Returns:
        float32 ``(batch, frames * frame_step, 1)``.

    Example:

    A constant 1 kHz fundamental at 8 kHz with two harmonics of amplitude 1
    and 0.5:

    >>> import numpy as np
    >>> f0 = np.full((1, 2, 1), 1000.0, "float32")
    >>> amps = np.array([[[1.0, 0.5]] * 2], "float32")
    >>> audio = harmonic_synthesis(f0, amps, 8000, frame_step=4)
    >>> audio.shape
    TensorShape([1, 8, 1])
    >>> n = np.arange(1, 9)
    >>> reference = np.sin(2 * np.pi * 1000 * n / 8000) + 0.5 * np.sin(2 * np.pi * 2000 * n / 8000)
    >>> bool(np.allclose(audio[0, :, 0], reference, atol=1e-5))
    True
    """
    frame_step = _check_frame_step(frame_step)
    f0_audio = upsample_linear(f0, frame_step)  # (batch, samples, 1)
    amplitudes_audio = upsample_with_windows(amplitudes, frame_step)
    numbers = _harmonic_numbers(amplitudes_audio)
    amplitudes_audio = remove_above_nyquist(f0_audio * numbers, amplitudes_audio, sample_rate)
    # k times a phase in [0, 2π): float32 keeps ~1e-5 rad for 100 harmonics.
    phase = wrapped_phase(f0_audio, sample_rate) * numbers
    return tf.reduce_sum(amplitudes_audio * tf.sin(phase), axis=-1, keepdims=True)
