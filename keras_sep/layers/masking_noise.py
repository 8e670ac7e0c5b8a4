"""Masking noise: a random fraction of the inputs set to zero, no rescaling."""
import keras
from keras import ops

from keras_sep.layers._corruption_base import CorruptionBase, check_rate


@keras.saving.register_keras_serializable(package="keras_sep")
class MaskingNoise(CorruptionBase):
    """Sets each input element to ``value`` (zero) with probability ``rate``.

    The masking noise of Vincent et al.'s denoising autoencoder. Unlike
    ``keras.layers.Dropout``, the kept elements are *not* scaled by
    ``1 / (1 - rate)``: the corrupted input stays in the data range and the
    network must fill in the missing values, not re-normalise them. Each
    element (every channel of every pixel) is masked independently.

    Args:
        rate: probability of masking an element, in ``[0, 1]``.
        value: what a masked element becomes.
        seed: int seed of the layer's random generator, or None.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: float tensor of any shape ``(batch, ...)``.
        training: corrupt when True; identity when False or None.

    Input shape:
        ``(batch, ...)``, any rank.

    Output shape:
        Same as the input.

    Example:

    >>> import numpy as np
    >>> layer = MaskingNoise(0.25, seed=0)
    >>> noisy = np.asarray(layer(np.ones((4, 1000), "float32"), training=True))
    >>> sorted(set(noisy.ravel().tolist()))
    [0.0, 1.0]
    >>> bool(abs((noisy == 0).mean() - 0.25) < 0.03)
    True

    References:
        - P. Vincent et al., "Extracting and composing robust features with
          denoising autoencoders", ICML 2008.
    """

    def __init__(self, rate, value=0.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate)
        self.value = float(value)

    def corrupt(self, inputs):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        draw = keras.random.uniform(
            ops.shape(inputs), dtype="float32", seed=self.seed_generator
        )
        masked = ops.less(draw, self.rate)
        return ops.where(masked, ops.cast(self.value, inputs.dtype), inputs)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "value": self.value})
        return config
