"""Short-time Fourier transform and its inverse on ``tf.signal`` (float32).

Layout is channels-last throughout: waveforms are ``(batch, samples,
channels)`` and spectrograms ``(batch, frames, bins, channels)``. Because
``tf.signal`` frames the last axis, the channels are moved in front of the
samples for the transform and back afterwards, so every channel is
transformed independently.

The transforms always run in float32 (complex64), whatever dtype comes in:
half-precision FFTs lose too much of the signal, so under ``mixed_float16``
the STFT stays float32 and only the network in between runs in float16.

Spleeter's signal path is expressed with these functions as::

    padded = tf.pad(waveform, [[0, 0], [4096, 0], [0, 0]])
    spec = stft(padded, 4096, 1024, pad_end=True)            # 2049 bins
    wave = istft(spec, 4096, 1024, normalize=False) * 2 / 3
    wave = wave[:, 4096 : 4096 + num_samples]

(The squared periodic Hann window summed at a hop of a quarter frame is 1.5
everywhere, hence the 2/3: :func:`overlap_add_scale`.)

Code that keeps the complex spectrum between the two transforms (masking
it, as :class:`keras_sep.models.WaveformSeparator` does chunk by chunk)
passes ``data_format="channels_first"`` to both: then no complex tensor is
ever transposed, and the inverse overlap-adds with :func:`overlap_add`.
"""
import numpy as np
import tensorflow as tf

WINDOWS = ("hann", "hamming", "boxcar", None)
PAD_MODES = ("constant", "reflect", "symmetric")
DATA_FORMATS = ("channels_last", "channels_first")


def validate_stft_args(frame_length, frame_step, fft_length=None, window="hann"):
    """Check the arguments shared by :func:`stft` and :func:`istft`.

    Returns:
        The resolved ``fft_length`` (``frame_length`` when None).
    """
    if int(frame_length) != frame_length or frame_length <= 0:
        raise ValueError(f"frame_length must be a positive integer, got {frame_length!r}")
    if int(frame_step) != frame_step or frame_step <= 0:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
    if fft_length is None:
        fft_length = frame_length
    if int(fft_length) != fft_length or fft_length < frame_length:
        raise ValueError(
            f"fft_length must be an integer >= frame_length={frame_length}, got {fft_length!r}"
        )
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    return int(fft_length)


def _check_data_format(data_format):
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {DATA_FORMATS}, got {data_format!r}")


def window_fn(window):
    """The ``tf.signal`` window function for a window name.

    ``"hann"`` and ``"hamming"`` are periodic (the DFT-even windows that
    librosa and Spleeter use); ``"boxcar"`` and None are rectangular.
    """
    if window == "hann":
        return lambda length, dtype: tf.signal.hann_window(length, periodic=True, dtype=dtype)
    if window == "hamming":
        return lambda length, dtype: tf.signal.hamming_window(length, periodic=True, dtype=dtype)
    if window in ("boxcar", None):
        return lambda length, dtype: tf.ones([length], dtype=dtype)
    raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")


def num_frames(num_samples, frame_length, frame_step, center=False, pad_end=False):
    """Frames :func:`stft` returns for ``num_samples`` samples.

    Works on Python integers (None propagates, for unknown static shapes)
    and on integer tensors.

    Example:

    >>> num_frames(1000, 64, 16), num_frames(1000, 64, 16, center=True)
    (59, 63)
    >>> istft_length(63, 64, 16, center=True)  # pass length=1000 to istft
    992
    """
    if num_samples is None:
        return None
    if center:
        num_samples = num_samples + 2 * (frame_length // 2)
    if pad_end:
        return -(-num_samples // frame_step)
    frames = 1 + (num_samples - frame_length) // frame_step
    return tf.maximum(frames, 0) if tf.is_tensor(frames) else max(frames, 0)


def istft_length(frames, frame_length, frame_step, center=False):
    """Samples :func:`istft` returns for ``frames`` frames when no ``length`` is given."""
    if frames is None:
        return None
    length = (frames - 1) * frame_step + frame_length
    if center:
        length = length - 2 * (frame_length // 2)
    return tf.maximum(length, 0) if tf.is_tensor(length) else max(length, 0)


def stft(
    waveform,
    frame_length,
    frame_step,
    fft_length=None,
    window="hann",
    center=False,
    pad_mode="constant",
    pad_end=False,
    data_format="channels_last",
):
    """Complex STFT of a multichannel waveform, each channel on its own.

    Args:
        waveform: ``(batch, samples, channels)``, any real dtype (computed
            in float32). Batch and sample count may be dynamic.
            ``(batch, channels, samples)`` with ``"channels_first"``.
        frame_length: window length in samples.
        frame_step: hop between frames in samples.
        fft_length: FFT size, ``>= frame_length`` (frames are zero-padded at
            their end); default ``frame_length``. Gives ``fft_length // 2 + 1``
            bins.
        window: ``"hann"`` (periodic), ``"hamming"`` (periodic), ``"boxcar"``
            or None (rectangular).
        center: pad ``frame_length // 2`` samples on both sides first, so
            frame ``t`` is centred on sample ``t * frame_step`` (librosa's
            ``center=True``).
        pad_mode: how ``center`` pads: ``"constant"`` (zeros), ``"reflect"``
            or ``"symmetric"``. Reflection needs more than
            ``frame_length // 2`` samples.
        pad_end: zero-pad the end so the last samples get a frame of their
            own (``tf.signal.stft``'s ``pad_end``).
        data_format: ``"channels_last"`` or ``"channels_first"``, the
            layout of both the waveform and the spectrogram.
            ``"channels_first"`` is the layout ``tf.signal`` computes in, so
            nothing is transposed; :func:`istft` takes it back.

    Returns:
        complex64 ``(batch, frames, bins, channels)``, or ``(batch,
        channels, frames, bins)`` with ``"channels_first"``; see
        :func:`num_frames`.

    Example:

    >>> import numpy as np
    >>> waveform = np.zeros((2, 1000, 2), "float32")
    >>> spec = stft(waveform, 64, 16, center=True)
    >>> spec.shape, spec.dtype.name
    (TensorShape([2, 63, 33, 2]), 'complex64')
    >>> channels_first = waveform.transpose(0, 2, 1)
    >>> stft(channels_first, 64, 16, center=True, data_format="channels_first").shape
    TensorShape([2, 2, 63, 33])
    """
    fft_length = validate_stft_args(frame_length, frame_step, fft_length, window)
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    _check_data_format(data_format)
    signals = tf.cast(waveform, tf.float32)
    if data_format == "channels_last":
        signals = tf.transpose(signals, [0, 2, 1])  # (batch, channels, samples)
    if center:
        half = frame_length // 2
        signals = tf.pad(signals, [[0, 0], [0, 0], [half, half]], mode=pad_mode.upper())
    spectrogram = tf.signal.stft(
        signals,
        frame_length,
        frame_step,
        fft_length=fft_length,
        window_fn=window_fn(window),
        pad_end=pad_end,
    )
    if data_format == "channels_first":
        return spectrogram
    return tf.transpose(spectrogram, [0, 2, 3, 1])


def istft(
    spectrogram,
    frame_length,
    frame_step,
    fft_length=None,
    window="hann",
    center=False,
    length=None,
    normalize=True,
    data_format="channels_last",
):
    """Inverse of :func:`stft` by windowed overlap-add.

    With ``normalize=True`` the overlap-added signal is divided by the sum
    of the squared windows, so ``istft(stft(x)) == x`` up to float32
    rounding: with ``center=True`` everywhere (as librosa), dividing by the
    squared windows of the frames actually present; with ``center=False``
    wherever ``frame_length / frame_step`` frames overlap, i.e. away from the
    first and last ``frame_length - frame_step`` samples, dividing by the
    steady-state sum (``tf.signal.inverse_stft_window_fn``), which tapers the
    ends instead of amplifying them where the window is near zero.

    With ``normalize=False`` this is what ``tf.signal.inverse_stft``
    computes, the windowed overlap-add with no division. Spleeter uses that
    and scales the result by :func:`overlap_add_scale` itself (2/3 for Hann
    at a hop of a quarter frame).

    The frames are overlap-added by :func:`overlap_add`, faster than
    ``tf.signal.inverse_stft``'s general op when ``frame_step`` divides
    ``frame_length``.

    Args:
        spectrogram: complex ``(batch, frames, bins, channels)``, or
            ``(batch, channels, frames, bins)`` with ``"channels_first"``,
            cast to complex64. ``bins`` is at most ``fft_length // 2 + 1``;
            bins missing at the top count as zeros (a spectrum cut at a
            cutoff need not be padded by the caller).
        frame_length, frame_step, fft_length, window, center: as given to
            :func:`stft`.
        length: optional output sample count (Python int or scalar integer
            tensor); the output is cut or zero-padded at its end to it.
            Default: every sample the frames cover, less the ``center``
            padding (:func:`istft_length`).
        normalize: divide by the window sum (see above).
        data_format: ``"channels_last"`` or ``"channels_first"``, as given
            to :func:`stft`.

    Returns:
        float32 ``(batch, samples, channels)``, or ``(batch, channels,
        samples)`` with ``"channels_first"``.

    Example:

    >>> import numpy as np
    >>> waveform = np.random.default_rng(0).normal(size=(1, 1000, 2)).astype("float32")
    >>> spec = stft(waveform, 64, 16, center=True)
    >>> restored = istft(spec, 64, 16, center=True, length=1000)
    >>> error = float(np.max(np.abs(restored - waveform)))
    >>> print(f"round-trip error {error:.0e} < 1e-6: {error < 1e-6}")
    round-trip error ...e-0... < 1e-6: True
    """
    fft_length = validate_stft_args(frame_length, frame_step, fft_length, window)
    _check_data_format(data_format)
    forward = window_fn(window)
    stfts = tf.cast(spectrogram, tf.complex64)
    if data_format == "channels_last":
        stfts = tf.transpose(stfts, [0, 3, 1, 2])  # (batch, channels, frames, bins)
    bins = stfts.shape[-1]
    if bins is not None:
        missing = fft_length // 2 + 1 - bins
        if missing < 0:
            raise ValueError(
                f"the spectrogram has {bins} bins; fft_length={fft_length} gives at most "
                f"{fft_length // 2 + 1}"
            )
        if missing:
            stfts = tf.pad(stfts, [[0, 0], [0, 0], [0, 0], [0, missing]])
    if normalize and not center:
        inverse = tf.signal.inverse_stft_window_fn(frame_step, forward_window_fn=forward)
    else:
        inverse = forward
    frames = tf.signal.irfft(stfts, fft_length=[fft_length])
    if fft_length > frame_length:
        frames = frames[..., :frame_length]
    signals = overlap_add(frames * inverse(frame_length, tf.float32), frame_step)
    if normalize and center:
        signals = signals / _window_envelope(tf.shape(stfts)[2], frame_length, frame_step, forward)
    if center:
        half = frame_length // 2
        signals = signals[..., half:]
        if length is None:
            signals = signals[..., : tf.shape(signals)[-1] - half]
    if data_format == "channels_last":
        signals = tf.transpose(signals, [0, 2, 1])  # (batch, samples, channels)
    if length is not None:
        signals = fit_length(signals, length, axis=1 if data_format == "channels_last" else 2)
    return signals


def overlap_add_scale(frame_length, frame_step, window="hann"):
    """The constant ``frame_step / sum(window ** 2)`` (a Python float) that
    makes ``istft(..., normalize=False)`` the signal wherever the squared
    windows overlap-add to a constant, e.g. Hann at a hop of a quarter
    frame (2/3); Spleeter scales its output by it.

    Example:

    >>> round(overlap_add_scale(4096, 1024), 6)
    0.666667
    >>> overlap_add_scale(64, 64, window=None)
    1.0
    """
    validate_stft_args(frame_length, frame_step, None, window)
    weights = np.asarray(window_fn(window)(int(frame_length), tf.float32))
    return float(frame_step / np.sum(weights**2))


def _window_envelope(frames, frame_length, frame_step, forward):
    """Overlap-added squared window of ``frames`` frames, floored away from 0.

    The floor only touches the ``center`` padding (a centred frame always
    puts a large window value on every kept sample), which is cut away.
    """
    squared = tf.square(forward(frame_length, tf.float32))
    envelope = tf.signal.overlap_and_add(
        tf.tile(squared[None, :], tf.stack([frames, 1])), frame_step
    )
    return tf.maximum(envelope, 1e-6)


def overlap_add(frames, frame_step):
    """``tf.signal.overlap_and_add`` over the last two axes ``(..., frames,
    frame_length)``.

    When ``frame_length`` is a multiple of ``frame_step`` the frames are cut
    into blocks of ``frame_step`` samples and the ``frame_length /
    frame_step`` shifted block sequences are summed, which is 2–3× faster on
    CPU than the general op.

    Example:

    >>> import numpy as np
    >>> overlap_add(np.ones((3, 4), "float32"), 2).numpy()
    array([1., 1., 2., 2., 2., 2., 1., 1.], dtype=float32)
    """
    frames = tf.convert_to_tensor(frames)
    frame_length = frames.shape[-1]
    if frame_length is None or frame_length % frame_step or frames.shape.rank is None:
        return tf.signal.overlap_and_add(frames, frame_step)
    ratio = frame_length // frame_step
    shape = tf.shape(frames)
    outer, count = shape[:-2], shape[-2]
    blocks = tf.reshape(frames, tf.concat([outer, [count, ratio, frame_step]], axis=0))
    no_pad = [[0, 0]] * (frames.shape.rank - 2)
    total = None
    for q in range(ratio):
        shifted = tf.pad(blocks[..., q, :], no_pad + [[q, ratio - 1 - q], [0, 0]])
        total = shifted if total is None else total + shifted
    return tf.reshape(total, tf.concat([outer, [(count + ratio - 1) * frame_step]], axis=0))


def fit_length(waveform, length, axis=1):
    """Cut or zero-pad ``(batch, samples, channels)`` at its end to ``length``
    samples; ``axis=2`` for ``(batch, channels, samples)``."""
    if axis not in (1, 2):
        raise ValueError(f"axis must be 1 or 2, got {axis!r}")
    if axis == 1:
        waveform = waveform[:, :length]
    else:
        waveform = waveform[:, :, :length]
    missing = tf.maximum(tf.cast(length, tf.int32) - tf.shape(waveform)[axis], 0)
    rows = [[0, 0], [0, 0], [0, 0]]
    rows[axis] = [0, missing]
    return tf.pad(waveform, tf.stack(rows))
