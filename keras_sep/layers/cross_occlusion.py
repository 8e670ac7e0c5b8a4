"""Structured occlusion: a random cross of pixels drawn over each image."""
import keras
from keras import ops

from keras_sep.layers._corruption_base import CorruptionBase


@keras.saving.register_keras_serializable(package="keras_sep")
class CrossOcclusion(CorruptionBase):
    """Draws a random plus-shaped band of ``value`` over each image.

    The seed lecture's denoising example shows a digit with a cross drawn
    over it, and an autoencoder that removes the cross. This layer draws,
    per example, one horizontal band of ``thickness`` rows starting at a
    random row ``r`` and one vertical band of ``thickness`` columns starting
    at a random column ``c``, and sets every channel of those pixels to
    ``value``. With ``length=None`` both bands span the image (the cross
    then covers ``thickness * (height + width - thickness)`` pixels); with
    ``length = L`` each bar reaches only ``L`` pixels past the other bar, a
    plus sign centred near ``(r, c)``, clipped at the borders.

    Images are ``(batch, height, width, channels)`` or ``(batch, height,
    width)``; flat vectors ``(batch, height * width * channels)``, such as
    the inputs of a dense autoencoder, need ``image_shape``.

    Args:
        thickness: width of each bar in pixels, ``>= 1``.
        length: reach of each arm past the crossing bar, in pixels; None
            draws bars across the whole image.
        value: what the occluded pixels become (1 = white for images in
            ``[0, 1]``).
        image_shape: ``(height, width)`` or ``(height, width, channels)``
            when the inputs are flat vectors; None when they are images.
        seed: int seed of the layer's random generator, or None.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: images ``(batch, height, width[, channels])`` or flat vectors
            ``(batch, features)`` with ``image_shape`` given.
        training: corrupt when True; identity when False or None.

    Input shape:
        ``(batch, height, width, channels)``, ``(batch, height, width)``, or
        ``(batch, prod(image_shape))``.

    Output shape:
        Same as the input.

    Example:

    >>> import numpy as np
    >>> layer = CrossOcclusion(thickness=1, image_shape=(8, 8), seed=0)
    >>> noisy = np.asarray(layer(np.zeros((2, 64), "float32"), training=True))
    >>> (noisy == 1).sum(axis=1).tolist()  # 8 + 8 - 1 pixels per image
    [15, 15]

    References:
        - MathWorks, "What is an autoencoder?" (the seed lecture's
          cross-occluded digit), https://www.mathworks.com/discovery/autoencoder.html
        - P. Vincent et al., "Stacked denoising autoencoders", JMLR, 2010.
    """

    def __init__(
        self, thickness=1, length=None, value=1.0, image_shape=None, seed=None, **kwargs
    ):
        super().__init__(seed=seed, **kwargs)
        if int(thickness) < 1:
            raise ValueError(f"thickness must be >= 1, got {thickness!r}")
        if length is not None and int(length) < 0:
            raise ValueError(f"length must be None or >= 0, got {length!r}")
        if image_shape is not None:
            image_shape = tuple(int(s) for s in image_shape)
            if len(image_shape) not in (2, 3) or min(image_shape) < 1:
                raise ValueError(
                    "image_shape must be (height, width) or (height, width, "
                    f"channels) of positive sizes, got {image_shape!r}"
                )
            if min(image_shape[:2]) < int(thickness):
                raise ValueError(
                    f"thickness {thickness!r} exceeds the image size {image_shape!r}"
                )
        self.thickness = int(thickness)
        self.length = None if length is None else int(length)
        self.value = float(value)
        self.image_shape = image_shape

    def _random_start(self, batch, size):
        """Random first index of a band, uniform over ``[0, size - thickness]``."""
        draw = keras.random.uniform((batch,), dtype="float32", seed=self.seed_generator)
        choices = ops.cast(size - self.thickness + 1, "float32")
        start = ops.cast(ops.floor(draw * choices), "int32")
        return ops.minimum(start, ops.cast(size - self.thickness, "int32"))[:, None]

    def cross_mask(self, batch, height, width):
        """Boolean ``(batch, height, width)`` mask of a fresh random cross."""
        rows = ops.arange(height, dtype="int32")[None, :]
        cols = ops.arange(width, dtype="int32")[None, :]
        top = self._random_start(batch, height)
        left = self._random_start(batch, width)
        in_rows = ops.logical_and(rows >= top, rows < top + self.thickness)
        in_cols = ops.logical_and(cols >= left, cols < left + self.thickness)
        if self.length is None:
            horizontal = ops.broadcast_to(in_rows[:, :, None], (batch, height, width))
            vertical = ops.broadcast_to(in_cols[:, None, :], (batch, height, width))
        else:
            reach = self.length
            near_rows = ops.logical_and(
                rows >= top - reach, rows < top + self.thickness + reach
            )
            near_cols = ops.logical_and(
                cols >= left - reach, cols < left + self.thickness + reach
            )
            horizontal = ops.logical_and(in_rows[:, :, None], near_cols[:, None, :])
            vertical = ops.logical_and(near_rows[:, :, None], in_cols[:, None, :])
        return ops.logical_or(horizontal, vertical)

    def corrupt(self, inputs):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        shape = ops.shape(inputs)
        if self.image_shape is not None:
            image_shape = self.image_shape + ((1,) if len(self.image_shape) == 2 else ())
            images = ops.reshape(inputs, (-1,) + image_shape)
        elif len(inputs.shape) == 3:
            images = inputs[..., None]
        elif len(inputs.shape) == 4:
            images = inputs
        else:
            raise ValueError(
                "CrossOcclusion needs images (batch, height, width[, channels]) "
                f"or image_shape for flat inputs, got inputs of shape {inputs.shape}"
            )
        image_dims = ops.shape(images)
        mask = self.cross_mask(image_dims[0], image_dims[1], image_dims[2])
        outputs = ops.where(mask[..., None], ops.cast(self.value, images.dtype), images)
        return ops.reshape(outputs, shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "thickness": self.thickness,
                "length": self.length,
                "value": self.value,
                "image_shape": None if self.image_shape is None else list(self.image_shape),
            }
        )
        return config
