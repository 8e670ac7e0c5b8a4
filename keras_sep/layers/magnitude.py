"""Magnitude layer: complex spectrogram to float32 magnitude."""
import keras

from keras_sep.ops import spectra


@keras.saving.register_keras_serializable(package="keras_sep")
class Magnitude(keras.layers.Layer):
    """Element-wise ``|X| ** power`` of a complex spectrogram, in float32.

    The bridge from :class:`STFT` to a real-valued network: ``power=1``
    gives the magnitude spectrogram, ``power=2`` the power spectrogram
    (computed as ``re ** 2 + im ** 2``, without a square root). The output
    is float32 under any dtype policy; a ``mixed_float16`` network after it
    casts it to float16 itself.

    Args:
        power: exponent applied to the magnitude, > 0.
        **kwargs: base layer arguments (``name``, ...). The dtype is always
            float32.

    Call arguments:
        spectrogram: complex tensor (a real tensor gives its absolute value).

    Input shape:
        Any, typically ``(batch, frames, bins, channels)``.

    Output shape:
        Same as the input, float32.

    Example:

    A cosine of amplitude 1 that makes 4 periods in one 64-sample
    rectangular frame has magnitude ``64 / 2`` in bin 4 and none elsewhere:

    >>> import numpy as np
    >>> from keras_sep.layers import STFT
    >>> t = np.arange(64, dtype="float32")
    >>> cosine = np.cos(2 * np.pi * 4 * t / 64)[None, :, None]
    >>> spec = STFT(frame_length=64, frame_step=64, window=None)(cosine)
    >>> magnitude = Magnitude()(spec)
    >>> magnitude.shape, magnitude.dtype.name
    (TensorShape([1, 1, 33, 1]), 'float32')
    >>> np.round(np.asarray(magnitude)[0, 0, :6, 0], 3)
    array([ 0.,  0.,  0.,  0., 32.,  0.], dtype=float32)
    >>> float(Magnitude(power=2.0)(spec)[0, 0, 4, 0])
    1024.0
    """

    def __init__(self, power=1.0, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        if not power > 0:
            raise ValueError(f"power must be > 0, got {power!r}")
        self.power = float(power)

    def call(self, spectrogram):
        return spectra.magnitude(spectrogram, self.power)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, spectrogram):
        return keras.KerasTensor(tuple(spectrogram.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"power": self.power})
        return config
