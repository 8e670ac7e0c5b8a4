"""Salt-and-pepper noise: a random fraction of inputs set to the min or max."""
import keras
from keras import ops

from keras_sep.layers._corruption_base import CorruptionBase, check_rate


@keras.saving.register_keras_serializable(package="keras_sep")
class SaltAndPepperNoise(CorruptionBase):
    """Sets a fraction ``rate`` of the elements to ``salt`` or ``pepper``.

    Each element is corrupted independently with probability ``rate``; a
    corrupted element becomes ``salt`` (the maximum, white) or ``pepper``
    (the minimum, black) with equal probability. One uniform draw ``u`` per
    element decides both: ``u < rate / 2`` gives pepper, ``rate / 2 <= u <
    rate`` gives salt.

    Args:
        rate: probability of corrupting an element, in ``[0, 1]``.
        salt: the high value.
        pepper: the low value.
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
    >>> layer = SaltAndPepperNoise(0.2, seed=0)
    >>> noisy = np.asarray(layer(np.full((4, 1000), 0.5, "float32"), training=True))
    >>> sorted(set(noisy.ravel().tolist()))
    [0.0, 0.5, 1.0]

    References:
        - P. Vincent et al., "Stacked denoising autoencoders: learning useful
          representations in a deep network with a local denoising
          criterion", JMLR, 2010.
    """

    def __init__(self, rate, salt=1.0, pepper=0.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_rate(rate)
        self.salt = float(salt)
        self.pepper = float(pepper)

    def corrupt(self, inputs):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        draw = keras.random.uniform(
            ops.shape(inputs), dtype="float32", seed=self.seed_generator
        )
        dtype = inputs.dtype
        outputs = ops.where(
            ops.less(draw, self.rate), ops.cast(self.salt, dtype), inputs
        )
        return ops.where(
            ops.less(draw, 0.5 * self.rate), ops.cast(self.pepper, dtype), outputs
        )

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "salt": self.salt, "pepper": self.pepper})
        return config
