"""FilteredNoise layer: DDSP's noise synthesiser, white noise through a
time-varying FIR filter."""
import keras
import tensorflow as tf

from keras_sep.ops import filtering, synthesis


@keras.saving.register_keras_serializable(package="keras_sep")
class FilteredNoise(keras.layers.Layer):
    """Uniform noise shaped by a frequency response per frame.

    :meth:`get_controls` scales raw network outputs into magnitudes
    (``exp_sigmoid(raw + initial_bias)``: the bias starts the noise quiet);
    :meth:`get_signal` draws noise in ``[-1, 1)`` and filters it block by
    block with linear-phase FIR filters sampled from the magnitudes
    (:func:`~keras_sep.ops.filtering.filtered_noise`). ``call`` does both.
    Always float32, also under a ``mixed_float16`` policy.

    Args:
        frame_step: audio samples per control frame.
        window_size: taps of each frame's filter (default ``2 * (bins -
            1)``).
        initial_bias: added to the raw magnitudes before scaling.
        scale_controls: pass the magnitudes through the scaled sigmoid
            (False: use them as given).
        seed: None draws fresh noise at every call (training); an integer
            draws the same noise at every call (reproducible rendering and
            tests).
        **kwargs: base layer arguments (``name``, ...); the dtype is float32.

    Call arguments:
        magnitudes: raw per-frame magnitudes ``(batch, frames, bins)``,
            ``bins`` linearly spaced from 0 Hz to Nyquist (65 in DDSP).

    Input shape:
        ``(batch, frames, bins)``.

    Output shape:
        ``(batch, frames * frame_step, 1)``, float32 audio.

    Example:

    >>> import numpy as np
    >>> noise = FilteredNoise(frame_step=64, seed=0)
    >>> audio = noise(np.zeros((2, 10, 65), "float32"))
    >>> audio.shape, audio.dtype.name
    (TensorShape([2, 640, 1]), 'float32')
    >>> bool(np.array_equal(audio, noise(np.zeros((2, 10, 65), "float32"))))  # seeded
    True

    References:
        Engel, Hantrakul, Gu and Roberts, "DDSP: Differentiable Digital
        Signal Processing", ICLR 2020; magenta/ddsp ``synths.FilteredNoise``.
    """

    def __init__(
        self, frame_step=64, window_size=None, initial_bias=-5.0, scale_controls=True, seed=None, **kwargs
    ):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        if int(frame_step) != frame_step or frame_step <= 0:
            raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
        if window_size is not None and (int(window_size) != window_size or window_size <= 0):
            raise ValueError(f"window_size must be a positive integer or None, got {window_size!r}")
        if seed is not None and int(seed) != seed:
            raise ValueError(f"seed must be an integer or None, got {seed!r}")
        self.frame_step = int(frame_step)
        self.window_size = None if window_size is None else int(window_size)
        self.initial_bias = float(initial_bias)
        self.scale_controls = bool(scale_controls)
        self.seed = None if seed is None else int(seed)

    def get_controls(self, magnitudes):
        """Raw network outputs to ``{"magnitudes"}`` (non-negative)."""
        if self.scale_controls:
            magnitudes = synthesis.exp_sigmoid(tf.cast(magnitudes, tf.float32) + self.initial_bias)
        return {"magnitudes": magnitudes}

    def get_signal(self, magnitudes):
        """Audio ``(batch, frames * frame_step, 1)`` from per-frame magnitudes."""
        shape = tf.shape(magnitudes)
        noise_shape = tf.stack([shape[0], shape[1] * self.frame_step, 1])
        if self.seed is None:
            noise = tf.random.uniform(noise_shape, -1.0, 1.0)
        else:
            noise = tf.random.stateless_uniform(noise_shape, [self.seed, 0], -1.0, 1.0)
        return filtering.filtered_noise(magnitudes, self.frame_step, self.window_size, noise=noise)

    def call(self, magnitudes):
        return self.get_signal(**self.get_controls(magnitudes))

    def compute_output_shape(self, input_shape):
        frames = input_shape[1]
        return (input_shape[0], None if frames is None else frames * self.frame_step, 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            frame_step=self.frame_step,
            window_size=self.window_size,
            initial_bias=self.initial_bias,
            scale_controls=self.scale_controls,
            seed=self.seed,
        )
        return config
