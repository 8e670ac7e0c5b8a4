"""Magnitude layer: complex spectrogram to float32 magnitude."""
import keras

from keras_sep.ops import stft as stft_ops


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

    >>> import numpy as np
    >>> spec = STFT(frame_length=512, frame_step=128)(np.zeros((1, 4096, 2), "float32"))
    >>> Magnitude(power=2.0)(spec).shape
    TensorShape([1, 29, 257, 2])
    """

    def __init__(self, power=1.0, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        if not power > 0:
            raise ValueError(f"power must be > 0, got {power!r}")
        self.power = float(power)

    def call(self, spectrogram):
        return stft_ops.magnitude(spectrogram, self.power)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, spectrogram):
        return keras.KerasTensor(tuple(spectrogram.shape), dtype="float32")

    def get_config(self):
        config = super().get_config()
        config.update({"power": self.power})
        return config
