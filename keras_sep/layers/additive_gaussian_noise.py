"""Additive isotropic Gaussian noise, active only while training."""
import keras
from keras import ops

from keras_sep.layers._corruption_base import CorruptionBase


@keras.saving.register_keras_serializable(package="keras_sep")
class AdditiveGaussianNoise(CorruptionBase):
    """Adds zero-mean Gaussian noise of standard deviation ``stddev``.

    Like ``keras.layers.GaussianNoise``, with two additions that a denoising
    autoencoder on images wants: the corrupted values can be clipped back to
    the data range (``clip_min``/``clip_max``, e.g. 0 and 1 for pixels), and
    ``corrupt(x)`` applies the noise outside training, to build the noisy
    test set the model is evaluated on. It shares that interface with
    ``MaskingNoise``, ``SaltAndPepperNoise`` and ``CrossOcclusion``.

    Args:
        stddev: standard deviation of the noise, ``>= 0``.
        clip_min: lower bound of the corrupted values, None for none.
        clip_max: upper bound of the corrupted values, None for none.
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
    >>> layer = AdditiveGaussianNoise(0.5, clip_min=0.0, clip_max=1.0, seed=0)
    >>> x = np.full((2, 8, 8, 1), 0.5, "float32")
    >>> bool(np.all(layer(x) == x))
    True
    >>> noisy = np.asarray(layer(x, training=True))
    >>> bool(noisy.min() >= 0.0 and noisy.max() <= 1.0 and noisy.std() > 0.1)
    True

    References:
        - P. Vincent et al., "Stacked denoising autoencoders: learning useful
          representations in a deep network with a local denoising
          criterion", JMLR, 2010.
    """

    def __init__(self, stddev, clip_min=None, clip_max=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        stddev = float(stddev)
        if stddev < 0:
            raise ValueError(f"stddev must be >= 0, got {stddev!r}")
        if clip_min is not None and clip_max is not None and clip_min > clip_max:
            raise ValueError(
                f"clip_min must not exceed clip_max, got clip_min={clip_min!r} "
                f"and clip_max={clip_max!r}"
            )
        self.stddev = stddev
        self.clip_min = None if clip_min is None else float(clip_min)
        self.clip_max = None if clip_max is None else float(clip_max)

    def corrupt(self, inputs):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        noise = keras.random.normal(
            ops.shape(inputs),
            stddev=self.stddev,
            dtype=self.compute_dtype,
            seed=self.seed_generator,
        )
        outputs = ops.add(inputs, noise)
        if self.clip_min is not None:
            outputs = ops.maximum(outputs, ops.cast(self.clip_min, outputs.dtype))
        if self.clip_max is not None:
            outputs = ops.minimum(outputs, ops.cast(self.clip_max, outputs.dtype))
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {"stddev": self.stddev, "clip_min": self.clip_min, "clip_max": self.clip_max}
        )
        return config
