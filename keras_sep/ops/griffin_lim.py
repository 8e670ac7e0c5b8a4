"""Phase reconstruction from a magnitude spectrogram: (fast) Griffin–Lim.

Griffin and Lim (1984) look for the signal whose STFT magnitude is closest
to a given one: starting from some phase, they repeat "inverse STFT, STFT,
put the wanted magnitude back". Perraudin, Balazs and Søndergaard (2013)
add momentum, the "fast" Griffin–Lim: the new phase is taken from
``rebuilt_k - momentum / (1 + momentum) * rebuilt_(k-1)``, which converges
much faster for ``momentum`` near 1. ``momentum=0`` is the classic
algorithm. This is the algorithm of ``librosa.griffinlim`` step for step
(the same update, the same inverse normalised by the sum of the squared
windows actually present), so with the same initial phase both give the
same signal to float32 precision.

Everything runs in float32 / complex64 as TensorFlow ops in one
``tf.while_loop``: it runs eagerly, under ``tf.function`` and under XLA
(``jit_compile=True``, 2–3× faster on CPU), and exports in a SavedModel.
Layout is channels-last as everywhere: magnitudes ``(batch, frames, bins,
channels)`` → waveforms ``(batch, samples, channels)``, every channel
reconstructed on its own; ``data_format="channels_first"`` takes and gives
``(batch, channels, frames, bins)`` instead, the layout the transforms
compute in (nothing is transposed).

``keras_sep.ops.griffin_lim`` is the function :func:`griffin_lim`; import
the module's other names from ``keras_sep.ops.griffin_lim`` itself
(``from keras_sep.ops.griffin_lim import reconstruct_phase``).
"""
import numpy as np
import tensorflow as tf

from keras_sep.ops import stft as stft_ops

INITS = ("random", "zeros")
# librosa's guard against dividing by a zero magnitude (the smallest normal float32).
_TINY = float(np.finfo(np.float32).tiny)


def check_arguments(iterations, momentum, init, frame_length, frame_step, fft_length, window, data_format):
    """Check :func:`griffin_lim`'s arguments; returns the resolved ``fft_length``."""
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations must be an integer >= 0, got {iterations!r}")
    if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1e6):
        raise ValueError(f"momentum must be a number >= 0 (0: classic Griffin-Lim), got {momentum!r}")
    if isinstance(init, str) and init not in INITS:
        raise ValueError(f"init must be one of {INITS}, None or a phase tensor, got {init!r}")
    if data_format not in stft_ops.DATA_FORMATS:
        raise ValueError(f"data_format must be one of {stft_ops.DATA_FORMATS}, got {data_format!r}")
    return stft_ops.validate_stft_args(frame_length, frame_step, fft_length, window)


def _initial_phasor(init, shape, seed):
    """Unit-modulus complex64 of ``shape`` from ``init`` (already channels-first)."""
    if init is None or (isinstance(init, str) and init == "zeros"):
        return tf.ones(shape, tf.complex64)
    if isinstance(init, str):  # "random": uniform phase
        if seed is None:
            phase = tf.random.uniform(shape, 0.0, 2 * np.pi)
        else:
            phase = tf.random.stateless_uniform(shape, [int(seed), 0], 0.0, 2 * np.pi)
        return tf.complex(tf.cos(phase), tf.sin(phase))
    if init.dtype.is_complex:  # a complex spectrogram: its phase
        init = tf.cast(init, tf.complex64)
        return _unit(init)
    phase = tf.cast(init, tf.float32)
    return tf.complex(tf.cos(phase), tf.sin(phase))


def _unit(spectrum, magnitude=None):
    """``magnitude * spectrum / (|spectrum| + tiny)``, librosa's
    normalisation (0 stays 0); ``spectrum`` complex or ``(real, imag)``.
    In real arithmetic: complex ``abs`` and products are slower on CPU,
    under XLA too."""
    if isinstance(spectrum, tuple):
        real, imag = spectrum
    else:
        real, imag = tf.math.real(spectrum), tf.math.imag(spectrum)
    scale = 1.0 / (tf.sqrt(real * real + imag * imag) + _TINY)
    if magnitude is not None:
        scale = scale * magnitude
    return tf.complex(real * scale, imag * scale)


def _inverse_gain(frames, length, frame_length, frame_step, window, center):
    """``1 / (overlap-added squared window)`` over the ``(frames - 1) * step
    + frame_length`` samples the frames span, 0 where the sum vanishes and
    outside the samples the output keeps: those are zeros of the signal
    (``center``'s padding, what ``length`` cuts off), as the STFT of the
    cut signal would see them."""
    span = (frames - 1) * frame_step + frame_length
    squared = tf.square(stft_ops.window_fn(window)(frame_length, tf.float32))
    envelope = tf.signal.overlap_and_add(tf.tile(squared[None, :], tf.stack([frames, 1])), frame_step)
    gain = tf.where(envelope > _TINY, 1.0 / tf.maximum(envelope, _TINY), 0.0)
    start = frame_length // 2 if center else 0
    # Without a length the centre padding is cut at both ends; a length may
    # keep the samples under the last frame's padding (librosa's istft does).
    keep = span - 2 * start if length is None else tf.minimum(tf.cast(length, tf.int32), span - start)
    position = tf.range(span)
    return tf.where((position >= start) & (position < start + keep), gain, 0.0)


def reconstruct_phase(
    magnitude,
    iterations=32,
    momentum=0.99,
    init="random",
    frame_length=2048,
    frame_step=512,
    fft_length=None,
    window="hann",
    center=True,
    length=None,
    seed=None,
    return_convergence=False,
    data_format="channels_last",
):
    """The complex spectrogram ``magnitude * exp(i * phase)`` after
    ``iterations`` Griffin–Lim steps; :func:`griffin_lim` inverts it.

    Arguments as :func:`griffin_lim`; ``init`` may also be a complex
    spectrogram, whose phase starts the iterations (e.g. the mixture's, when
    ``magnitude`` is a separated source's).

    Returns:
        complex64 in ``magnitude``'s layout, and with ``return_convergence``
        also float32 ``(batch, iterations)``: the spectral convergence
        ``‖|STFT(x_k)| − A‖_F / ‖A‖_F`` of the signal ``x_k`` each
        iteration inverts (over frames, bins and channels).
    """
    fft_length = check_arguments(iterations, momentum, init, frame_length, frame_step, fft_length, window, data_format)
    target = tf.cast(magnitude, tf.float32)
    if isinstance(init, (tf.Tensor, tf.Variable, np.ndarray)):
        init = tf.convert_to_tensor(init)
    if data_format == "channels_last":
        target = tf.transpose(target, [0, 3, 1, 2])  # (batch, channels, frames, bins)
        if tf.is_tensor(init):
            init = tf.transpose(init, [0, 3, 1, 2])
    bins = target.shape[-1]
    if bins is not None and bins != fft_length // 2 + 1:
        raise ValueError(f"the magnitude has {bins} bins; fft_length={fft_length} gives {fft_length // 2 + 1}")
    frames = tf.shape(target)[2]
    gain = _inverse_gain(frames, length, frame_length, frame_step, window, center)
    weight = momentum / (1.0 + momentum)

    def rebuild(estimate):
        # Inverse STFT normalised by the window sum actually present, then
        # the STFT of that signal (with its zeros, see _inverse_gain).
        signal = stft_ops.istft(
            estimate, frame_length, frame_step, fft_length, window,
            normalize=False, data_format="channels_first",
        ) * gain
        return stft_ops.stft(signal, frame_length, frame_step, fft_length, window, data_format="channels_first")

    def one_example(inputs):
        """All iterations for one example ``(channels, frames, bins)``."""
        target, estimate = inputs[0][None], inputs[1][None]
        norm = tf.sqrt(tf.reduce_sum(tf.square(target))) + _TINY

        # The loop carries the estimate (the magnitude with the current
        # phase) and the previous STFT for the momentum.
        def step(k, estimate, previous, convergence):
            rebuilt = rebuild(estimate)
            real, imag = tf.math.real(rebuilt), tf.math.imag(rebuilt)
            if return_convergence:
                size = tf.sqrt(real * real + imag * imag)
                convergence = convergence.write(k, tf.sqrt(tf.reduce_sum(tf.square(size - target))) / norm)
            if momentum:
                real = real - weight * tf.math.real(previous)
                imag = imag - weight * tf.math.imag(previous)
            return k + 1, _unit((real, imag), target), rebuilt, convergence

        convergence = tf.TensorArray(tf.float32, size=int(iterations), element_shape=tf.TensorShape([]))
        _, estimate, _, convergence = tf.while_loop(
            lambda k, *_: k < iterations,
            step,
            (tf.constant(0), estimate, tf.zeros_like(estimate), convergence),
            maximum_iterations=int(iterations),
        )
        return estimate[0], convergence.stack()

    phasor = _initial_phasor(init, tf.shape(target), seed)
    estimate = tf.complex(target * tf.math.real(phasor), target * tf.math.imag(phasor))
    # One example after the other: an iteration streams the whole
    # spectrogram through memory twice, and one example's stays in cache
    # where a batch's does not (8 clips of 30 s at 22.05 kHz: 1.6 s per
    # clip in one loop, 1.4 s one by one).
    spectrum, convergence = tf.map_fn(
        one_example,
        (target, estimate),
        fn_output_signature=(
            tf.TensorSpec(None, tf.complex64),
            tf.TensorSpec([int(iterations)], tf.float32),
        ),
        parallel_iterations=1,
    )
    spectrum.set_shape(target.shape)
    if data_format == "channels_last":
        spectrum = tf.transpose(spectrum, [0, 2, 3, 1])
    if not return_convergence:
        return spectrum
    return spectrum, convergence


def griffin_lim(
    magnitude,
    iterations=32,
    momentum=0.99,
    init="random",
    frame_length=2048,
    frame_step=512,
    fft_length=None,
    window="hann",
    center=True,
    length=None,
    seed=None,
    return_convergence=False,
    data_format="channels_last",
):
    """A waveform whose STFT magnitude approximates ``magnitude``.

    Args:
        magnitude: float ``(batch, frames, bins, channels)`` with ``bins =
            fft_length // 2 + 1`` (or ``(batch, channels, frames, bins)``
            with ``"channels_first"``); batch and frames may be dynamic.
        iterations: Griffin–Lim steps (librosa's ``n_iter``).
        momentum: 0.99 (default, librosa's) is the fast Griffin–Lim of
            Perraudin et al.; 0 the classic algorithm.
        init: the initial phase: ``"random"`` (uniform), ``"zeros"`` (or
            None: librosa's ``init=None``), or a tensor of ``magnitude``'s
            shape holding phases in radians (real) or a complex spectrogram
            whose phase is taken.
        frame_length, frame_step, fft_length, window, center: the STFT's,
            as in :func:`keras_sep.ops.stft.stft` (``center`` pads with zeros).
        length: output samples (int or scalar integer tensor); default all
            the frames cover (:func:`keras_sep.ops.stft.istft_length`).
            The iterations see the signal cut to it, as librosa's do.
        seed: integer seed of the random initial phase (None: TensorFlow's
            global generator).
        return_convergence: also return the spectral convergence of each
            iteration (see :func:`reconstruct_phase`).
        data_format: ``"channels_last"`` or ``"channels_first"``, the layout
            of ``magnitude``, ``init`` and the output.

    Returns:
        float32 ``(batch, samples, channels)`` (``(batch, channels,
        samples)`` with ``"channels_first"``), and with
        ``return_convergence`` also float32 ``(batch, iterations)``.

    Example:

    >>> import numpy as np
    >>> from keras_sep.ops import stft as stft_ops
    >>> waveform = np.random.default_rng(0).normal(size=(1, 8000, 2)).astype("float32")
    >>> magnitude = abs(stft_ops.stft(waveform, 512, 128, center=True))
    >>> fast = griffin_lim(magnitude, 16, frame_length=512, frame_step=128, length=8000, seed=0)
    >>> classic = griffin_lim(magnitude, 16, momentum=0.0, frame_length=512, frame_step=128, length=8000, seed=0)
    >>> fast.shape
    TensorShape([1, 8000, 2])
    >>> def error(x):
    ...     return float(spectral_convergence(x, magnitude, 512, 128)[0])
    >>> error(fast) < error(classic) < 1
    True

    References:
        - D. Griffin, J. Lim, "Signal estimation from modified short-time
          Fourier transform", IEEE Trans. ASSP 32(2), 1984.
        - N. Perraudin, P. Balazs, P. L. Søndergaard, "A fast Griffin-Lim
          algorithm", IEEE WASPAA, 2013.
    """
    result = reconstruct_phase(
        magnitude, iterations, momentum, init, frame_length, frame_step, fft_length, window,
        center, length, seed, return_convergence, data_format,
    )
    spectrum, convergence = result if return_convergence else (result, None)
    if data_format == "channels_last":
        spectrum = tf.transpose(spectrum, [0, 3, 1, 2])
    fft_length = fft_length or frame_length
    frames = tf.shape(spectrum)[2]
    signal = stft_ops.istft(
        spectrum, frame_length, frame_step, fft_length, window, normalize=False, data_format="channels_first"
    ) * _inverse_gain(frames, length, frame_length, frame_step, window, center)
    if center:
        signal = signal[..., frame_length // 2 :]
    if length is None:
        length = stft_ops.istft_length(frames, frame_length, frame_step, center)
    signal = stft_ops.fit_length(signal, length, axis=2)
    if data_format == "channels_last":
        signal = tf.transpose(signal, [0, 2, 1])
    return (signal, convergence) if return_convergence else signal


def spectral_convergence(waveform, magnitude, frame_length=2048, frame_step=512, fft_length=None,
                         window="hann", center=True):
    """``‖|STFT(waveform)| − magnitude‖_F / ‖magnitude‖_F`` per example, float32 ``(batch,)``.

    ``waveform`` ``(batch, samples, channels)`` and ``magnitude`` ``(batch,
    frames, bins, channels)``; the STFT (zero-padded with ``center``) must
    give ``magnitude``'s frames.
    """
    target = tf.cast(magnitude, tf.float32)
    rebuilt = tf.abs(stft_ops.stft(waveform, frame_length, frame_step, fft_length, window, center=center))
    error = tf.sqrt(tf.reduce_sum(tf.square(rebuilt - target), axis=[1, 2, 3]))
    return error / (tf.sqrt(tf.reduce_sum(tf.square(target), axis=[1, 2, 3])) + _TINY)
