"""Reverb layer: convolution with a learned impulse response."""
import keras
import tensorflow as tf

from keras_sep.ops import filtering


@keras.saving.register_keras_serializable(package="keras_sep")
class Reverb(keras.layers.Layer):
    """Room reverberation as one learned impulse response (DDSP's Reverb).

    The impulse response is a trainable weight of ``length`` taps.
    :meth:`get_controls` zeroes its first tap when the dry signal is kept
    (the direct path is the dry signal, so the learned response only adds
    reflections); :meth:`get_signal` convolves by FFT and adds the dry
    audio (:func:`~keras_sep.ops.filtering.reverb`). The output has the
    input's length. Always float32, also under a ``mixed_float16`` policy.

    Args:
        length: taps of the impulse response (48000 is 3 s at 16 kHz).
        add_dry: add the unprocessed input to the reverberated signal.
        initializer: initializer of the impulse response; the default is a
            near-silent normal (standard deviation 1e-6), as in DDSP.
        **kwargs: base layer arguments (``name``, ...); the dtype is float32.

    Call arguments:
        audio: ``(batch, samples, 1)``.

    Input shape:
        ``(batch, samples, 1)``.

    Output shape:
        ``(batch, samples, 1)``, float32.

    Example:

    >>> import numpy as np
    >>> reverb = Reverb(length=4, initializer="zeros")
    >>> audio = np.array([[[1.0], [0.0], [0.0], [0.0], [0.0]]], "float32")
    >>> reverb(audio)[0, :, 0].numpy()  # a silent response: the dry signal
    array([1., 0., 0., 0., 0.], dtype=float32)
    >>> reverb.impulse_response.assign([0.9, 0.5, 0.0, 0.25])
    <...>
    >>> np.round(reverb(audio)[0, :, 0].numpy(), 6)  # tap 0 is the dry path's, not learned
    array([1.  , 0.5 , 0.  , 0.25, 0.  ], dtype=float32)

    References:
        Engel, Hantrakul, Gu and Roberts, "DDSP: Differentiable Digital
        Signal Processing", ICLR 2020; magenta/ddsp ``effects.Reverb``.
    """

    def __init__(self, length=48000, add_dry=True, initializer=None, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)
        if int(length) != length or length <= 0:
            raise ValueError(f"length must be a positive integer, got {length!r}")
        self.length = int(length)
        self.add_dry = bool(add_dry)
        if initializer is None:
            initializer = keras.initializers.RandomNormal(stddev=1e-6)
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.impulse_response = self.add_weight(
            name="impulse_response", shape=(self.length,), initializer=self.initializer, trainable=True
        )

    def get_controls(self, impulse_response):
        """The impulse response the convolution uses (tap 0 zeroed with a dry path)."""
        if not self.add_dry:
            return {"impulse_response": impulse_response}
        mask = tf.concat([[0.0], tf.ones([self.length - 1])], axis=0)
        return {"impulse_response": impulse_response * mask}

    def get_signal(self, audio, impulse_response):
        """Reverberated audio, the input's length."""
        return filtering.reverb(audio, impulse_response, add_dry=self.add_dry)

    def call(self, audio):
        return self.get_signal(audio, **self.get_controls(tf.convert_to_tensor(self.impulse_response)))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            length=self.length,
            add_dry=self.add_dry,
            initializer=keras.initializers.serialize(self.initializer),
        )
        return config
