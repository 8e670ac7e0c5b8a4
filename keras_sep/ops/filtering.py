"""FIR filtering for DDSP: time-varying filters from per-frame magnitudes
(filtered noise) and long convolutions (reverb), all by FFT, in float32.

Audio is channels-last mono ``(batch, samples, 1)``; controls are frame-rate
``(batch, frames, bins)`` with ``frames * frame_step == samples``.

After Engel et al., "DDSP: Differentiable Digital Signal Processing",
ICLR 2020, and magenta/ddsp's ``core.py`` (the math, not the code).
"""
import tensorflow as tf

from keras_sep.ops.synthesis import _check_frame_step


def _next_power_of_two(n):
    """Smallest power of two ``>= n`` (Python int or scalar integer tensor)."""
    if isinstance(n, int):
        return 1 << max(n - 1, 0).bit_length()
    exponent = tf.math.ceil(tf.math.log(tf.cast(n, tf.float64)) / tf.math.log(tf.constant(2.0, tf.float64)))
    return tf.cast(2.0**exponent, tf.int32)


def fir_from_magnitudes(magnitudes, window_size=None):
    """Linear-phase FIR filters by frequency sampling.

    The magnitudes are taken as a zero-phase frequency response with ``bins``
    points from 0 Hz to Nyquist; its inverse FFT (``2 * (bins - 1)`` taps) is
    rotated so the response's centre is tap ``window_size // 2``, cut to
    ``window_size`` taps and shaped by a Hann window, which smooths the
    response between the sampled frequencies.

    Args:
        magnitudes: ``(..., bins)`` with a static ``bins >= 2``.
        window_size: taps of the filter, at most ``2 * (bins - 1)`` (default).

    Returns:
        float32 ``(..., window_size)``; the filter delays by ``window_size // 2``.

    Example:

    A flat response is a (windowed) delta at the centre tap:

    >>> import numpy as np
    >>> np.round(fir_from_magnitudes(np.ones((5,), "float32")).numpy(), 6)
    array([0., 0., 0., 0., 1., 0., 0., 0.], dtype=float32)
    """
    magnitudes = tf.cast(magnitudes, tf.float32)
    bins = magnitudes.shape[-1]
    if bins is None or bins < 2:
        raise ValueError(f"magnitudes need a static last axis of at least 2 bins, got {bins!r}")
    taps = 2 * (bins - 1)
    if window_size is None:
        window_size = taps
    if int(window_size) != window_size or not 0 < window_size <= taps:
        raise ValueError(f"window_size must be an integer in [1, {taps}], got {window_size!r}")
    window_size = int(window_size)
    impulse = tf.signal.irfft(tf.complex(magnitudes, tf.zeros_like(magnitudes)))
    impulse = tf.roll(impulse, shift=taps // 2, axis=-1)  # centre now at taps // 2
    start = taps // 2 - window_size // 2
    impulse = impulse[..., start : start + window_size]
    return impulse * tf.signal.hann_window(window_size, periodic=True, dtype=tf.float32)


def time_varying_convolve(audio, impulse_responses, frame_step):
    """Convolve block ``t`` of ``frame_step`` samples with filter ``t``.

    Each block is convolved (by FFT) with its own filter and the results are
    overlap-added, so the output has ``samples + taps - 1`` samples (the full
    convolution).

    Args:
        audio: ``(batch, samples, 1)`` with ``samples == frames * frame_step``.
        impulse_responses: ``(batch, frames, taps)``, static ``taps``.
        frame_step: samples per frame.

    Returns:
        float32 ``(batch, samples + taps - 1, 1)``.

    Example:

    >>> import numpy as np
    >>> audio = np.ones((1, 4, 1), "float32")
    >>> filters = np.array([[[1.0, 1.0], [0.0, 2.0]]], "float32")  # two frames
    >>> time_varying_convolve(audio, filters, 2)[0, :, 0].numpy()
    array([1., 2., 1., 2., 2.], dtype=float32)
    """
    frame_step = _check_frame_step(frame_step)
    audio = tf.cast(audio, tf.float32)[..., 0]
    impulse_responses = tf.cast(impulse_responses, tf.float32)
    taps = impulse_responses.shape[-1]
    if taps is None:
        raise ValueError("impulse_responses need a static last axis (the number of taps)")
    shape = tf.shape(impulse_responses)
    tf.debugging.assert_equal(
        tf.shape(audio)[1], shape[1] * frame_step, message="samples must equal frames * frame_step"
    )
    blocks = tf.reshape(audio, tf.stack([shape[0], shape[1], frame_step]))
    block_length = frame_step + taps - 1
    fft_length = _next_power_of_two(block_length)
    spectrum = tf.signal.rfft(blocks, [fft_length]) * tf.signal.rfft(impulse_responses, [fft_length])
    convolved = tf.signal.irfft(spectrum, [fft_length])[..., :block_length]
    return tf.signal.overlap_and_add(convolved, frame_step)[..., None]


def frequency_filter(audio, magnitudes, frame_step, window_size=None):
    """Filter audio with a time-varying linear-phase FIR filter.

    The filters come from :func:`fir_from_magnitudes`; their delay of
    ``window_size // 2`` samples is taken out, so the output is aligned with
    the input and has the same length.

    Args:
        audio: ``(batch, samples, 1)`` with ``samples == frames * frame_step``.
        magnitudes: ``(batch, frames, bins)``, the frequency response of each
            frame from 0 Hz to Nyquist, linearly spaced.
        frame_step: samples per frame.
        window_size: taps of each filter (default ``2 * (bins - 1)``).

    Returns:
        float32 ``(batch, samples, 1)``.

    Example:

    A flat response passes the audio unchanged:

    >>> import numpy as np
    >>> audio = np.random.default_rng(0).uniform(-1, 1, (1, 16, 1)).astype("float32")
    >>> out = frequency_filter(audio, np.ones((1, 2, 5), "float32"), frame_step=8)
    >>> bool(np.allclose(out, audio, atol=1e-6))
    True
    """
    impulse_responses = fir_from_magnitudes(magnitudes, window_size)
    taps = impulse_responses.shape[-1]
    full = time_varying_convolve(audio, impulse_responses, frame_step)
    samples = tf.shape(audio)[1]
    return full[:, taps // 2 : taps // 2 + samples]


def filtered_noise(magnitudes, frame_step, window_size=None, noise=None, seed=None):
    """Uniform white noise in ``[-1, 1)`` through :func:`frequency_filter`.

    Args:
        magnitudes: ``(batch, frames, bins)`` (see :func:`frequency_filter`).
        frame_step: samples per frame.
        window_size: taps of each filter.
        noise: optional ``(batch, frames * frame_step, 1)`` noise to filter
            instead of drawing it (``seed`` is then unused).
        seed: optional integer seed for the drawn noise.

    Returns:
        float32 ``(batch, frames * frame_step, 1)``.

    Example:

    >>> import numpy as np
    >>> filtered_noise(np.zeros((2, 3, 33), "float32"), 16).shape
    TensorShape([2, 48, 1])
    """
    frame_step = _check_frame_step(frame_step)
    magnitudes = tf.cast(magnitudes, tf.float32)
    if noise is None:
        shape = tf.shape(magnitudes)
        noise = tf.random.uniform(tf.stack([shape[0], shape[1] * frame_step, 1]), -1.0, 1.0, seed=seed)
    return frequency_filter(noise, magnitudes, frame_step, window_size)


def reverb(audio, impulse_response, add_dry=True):
    """Convolution reverb: the audio convolved with an impulse response (by
    FFT), cut to the audio's length, plus the dry audio.

    Args:
        audio: ``(batch, samples, 1)``; the length may be dynamic.
        impulse_response: ``(taps,)`` shared by the batch, or ``(batch,
            taps)``. Tap 0 is the direct path, tap ``k`` a delay of ``k``
            samples.
        add_dry: add the unprocessed audio to the wet signal.

    Returns:
        float32 ``(batch, samples, 1)``.

    Example:

    An impulse response of a single echo 2 samples later at half gain:

    >>> import numpy as np
    >>> audio = np.array([[[1.0], [0.0], [0.0], [0.0]]], "float32")
    >>> reverb(audio, np.array([0.0, 0.0, 0.5], "float32"))[0, :, 0].numpy()
    array([1. , 0. , 0.5, 0. ], dtype=float32)
    """
    audio = tf.cast(audio, tf.float32)
    impulse_response = tf.cast(impulse_response, tf.float32)
    if impulse_response.shape.rank == 1:
        impulse_response = impulse_response[None, :]
    if impulse_response.shape.rank != 2:
        raise ValueError(
            f"impulse_response must be (taps,) or (batch, taps), got shape {impulse_response.shape}"
        )
    samples = tf.shape(audio)[1]
    fft_length = _next_power_of_two(samples + tf.shape(impulse_response)[-1] - 1)
    signal = audio[..., 0]
    spectrum = tf.signal.rfft(signal, [fft_length]) * tf.signal.rfft(impulse_response, [fft_length])
    wet = tf.signal.irfft(spectrum, [fft_length])[:, :samples, None]
    return audio + wet if add_dry else wet
