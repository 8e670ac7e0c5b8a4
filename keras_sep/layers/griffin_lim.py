"""GriffinLim layer: a magnitude spectrogram back to a waveform, phase estimated."""
import keras

from keras_sep.ops.griffin_lim import INITS, check_arguments, griffin_lim
from keras_sep.ops import stft as stft_ops


@keras.saving.register_keras_serializable(package="keras_sep")
class GriffinLim(keras.layers.Layer):
    """Waveform from a magnitude spectrogram by (fast) Griffin–Lim.

    A thin layer over :func:`keras_sep.ops.griffin_lim.griffin_lim`: starting
    from ``init``'s phase it repeats inverse STFT → STFT → restore the
    magnitude ``iterations`` times, with ``momentum`` (0.99, the fast
    algorithm of Perraudin et al.; 0 is the classic one), then inverts. The
    STFT arguments are those the magnitude was computed with (as
    :class:`STFT`'s). It has no weights and always computes in float32.

    Args:
        iterations: Griffin–Lim steps.
        momentum: 0.99 (fast Griffin–Lim, librosa's default) or 0 (classic).
        init: initial phase, ``"random"`` or ``"zeros"``; a call may pass
            its own (``initial_phase``).
        frame_length: window length in samples.
        frame_step: hop between frames in samples.
        fft_length: FFT size; default ``frame_length``.
        window: ``"hann"``, ``"hamming"``, ``"boxcar"`` or None.
        center: the magnitude's frames are centred (``center=True`` of
            :class:`STFT`, zero padding).
        seed: integer seed of the random initial phase (the same phase at
            every call), or None.
        return_convergence: also return the spectral convergence of each
            iteration, ``(batch, iterations)``, e.g. to plot it.
        **kwargs: base layer arguments (``name``, ...). The dtype is always
            float32.

    Call arguments:
        inputs: the magnitude, or ``[magnitude, reference]`` where
            ``reference`` is any ``(batch, samples, ...)`` tensor whose
            sample count the output takes.
        length: output sample count (int or scalar integer tensor) when no
            reference is given; default all the frames cover.
        initial_phase: a real tensor of phases (radians) or a complex
            spectrogram of the magnitude's shape to start from instead of
            ``init``.

    Input shape:
        ``(batch, frames, fft_length // 2 + 1, channels)``, plus the
        optional reference.

    Output shape:
        float32 ``(batch, samples, channels)``; with ``return_convergence``
        also ``(batch, iterations)``.

    Example:

    >>> import numpy as np
    >>> from keras_sep.layers import STFT
    >>> waveform = np.random.normal(size=(2, 8000, 2)).astype("float32")
    >>> magnitude = STFT(512, 128, center=True, output_format="magnitude")(waveform)
    >>> layer = GriffinLim(iterations=8, frame_length=512, frame_step=128,
    ...                    center=True, return_convergence=True, seed=0)
    >>> estimate, convergence = layer([magnitude, waveform])
    >>> estimate.shape, convergence.shape
    (TensorShape([2, 8000, 2]), TensorShape([2, 8]))
    >>> bool(convergence[0, -1] < convergence[0, 0])
    True

    References:
        - D. Griffin, J. Lim, "Signal estimation from modified short-time
          Fourier transform", IEEE Trans. ASSP 32(2), 1984.
        - N. Perraudin, P. Balazs, P. L. Søndergaard, "A fast Griffin-Lim
          algorithm", IEEE WASPAA, 2013.
    """

    def __init__(
        self,
        iterations=32,
        momentum=0.99,
        init="random",
        frame_length=2048,
        frame_step=512,
        fft_length=None,
        window="hann",
        center=True,
        seed=None,
        return_convergence=False,
        **kwargs,
    ):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        if not isinstance(init, str) or init not in INITS:
            raise ValueError(f"init must be one of {INITS} (a call may pass initial_phase), got {init!r}")
        check_arguments(iterations, momentum, init, frame_length, frame_step, fft_length, window, "channels_last")
        if seed is not None and int(seed) != seed:
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        self.iterations = int(iterations)
        self.momentum = float(momentum)
        self.init = init
        self.frame_length = int(frame_length)
        self.frame_step = int(frame_step)
        self.fft_length = None if fft_length is None else int(fft_length)
        self.window = window
        self.center = bool(center)
        self.seed = None if seed is None else int(seed)
        self.return_convergence = bool(return_convergence)

    def call(self, inputs, length=None, initial_phase=None):
        if isinstance(inputs, (list, tuple)):
            inputs, reference = inputs
            length = keras.ops.shape(reference)[1]
        return griffin_lim(
            inputs,
            self.iterations,
            self.momentum,
            self.init if initial_phase is None else initial_phase,
            self.frame_length,
            self.frame_step,
            self.fft_length,
            self.window,
            self.center,
            length,
            self.seed,
            self.return_convergence,
        )

    def compute_output_shape(self, input_shape, length=None, initial_phase=None):
        reference_shape = None
        if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)):
            input_shape, reference_shape = input_shape
        batch, frames, _, channels = input_shape
        if reference_shape is not None:
            samples = reference_shape[1]
        elif isinstance(length, int):
            samples = length
        elif length is None:
            samples = stft_ops.istft_length(frames, self.frame_length, self.frame_step, self.center)
        else:
            samples = None
        shape = (batch, samples, channels)
        return (shape, (batch, self.iterations)) if self.return_convergence else shape

    def compute_output_spec(self, inputs, length=None, initial_phase=None):
        shapes = [x.shape for x in inputs] if isinstance(inputs, (list, tuple)) else inputs.shape
        shape = self.compute_output_shape(shapes, length)
        if self.return_convergence:
            return tuple(keras.KerasTensor(s, dtype="float32") for s in shape)
        return keras.KerasTensor(shape, dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "iterations": self.iterations,
                "momentum": self.momentum,
                "init": self.init,
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "fft_length": self.fft_length,
                "window": self.window,
                "center": self.center,
                "seed": self.seed,
                "return_convergence": self.return_convergence,
            }
        )
        return config
