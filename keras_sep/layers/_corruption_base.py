"""Shared body of the corruption layers used by denoising autoencoders.

Private: the public classes are ``AdditiveGaussianNoise``, ``MaskingNoise``,
``SaltAndPepperNoise`` and ``CrossOcclusion``. They share one contract:
``call`` corrupts only when ``training=True`` and is the identity otherwise,
so ``model.fit(x, x)`` trains noisy → clean and ``model.predict`` sees clean
inputs; ``corrupt(x)`` always corrupts, for building noisy test sets.
"""
import keras


class CorruptionBase(keras.layers.Layer):
    """Identity at inference; ``self.corrupt(inputs)`` when training.

    Subclasses implement ``corrupt`` and extend ``get_config``.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = True
        self.built = True

    def call(self, inputs, training=False):
        if training:
            return self.corrupt(inputs)
        return inputs

    def corrupt(self, inputs):
        """Return a corrupted copy of ``inputs`` (always, whatever the mode)."""
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


def check_rate(rate, name="rate"):
    """Raise ``ValueError`` unless ``0 <= rate <= 1``; return it as float."""
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {rate!r}")
    return rate
