"""Fixed (not learned) 2-D upsampling: nearest, bilinear or bed of nails."""
import keras

from keras_sep.ops import pooling, upsampling

MODES = ("nearest", "bilinear", "bed_of_nails")


@keras.saving.register_keras_serializable(package="keras_sep")
class Upsampling2D(keras.layers.Layer):
    """Upsampling by an integer factor, with the three classic fixed rules.

    Exists next to ``keras.layers.UpSampling2D`` (which it uses for the
    first two modes) to add bed of nails under one switch, so that decoders
    can compare the rules by changing a string:

    - ``"nearest"``: every value copied into its whole ``size`` cell.
    - ``"bilinear"``: linear interpolation along both axes with half-pixel
      centres; output pixel ``o`` samples input position
      ``(o + 0.5) / factor - 0.5``, clamped to the edge pixels.
    - ``"bed_of_nails"``: every value at the top-left of its cell, zeros
      elsewhere; the position-free cousin of :class:`MaxUnpooling2D`.

    Args:
        size: int or ``(rows, columns)`` upsampling factor.
        mode: ``"nearest"``, ``"bilinear"`` or ``"bed_of_nails"``.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, height, width, channels)`` tensor, e.g. a
            spectrogram ``(batch, frames, bins, channels)``.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, height * rows, width * columns, channels)``.

    Example:

    >>> import numpy as np
    >>> x = np.array([1.0, 2.0, 3.0, 4.0], "float32").reshape(1, 2, 2, 1)
    >>> Upsampling2D(2, mode="bed_of_nails")(x)[0, :, :, 0].numpy()
    array([[1., 0., 2., 0.],
           [0., 0., 0., 0.],
           [3., 0., 4., 0.],
           [0., 0., 0., 0.]], dtype=float32)
    >>> Upsampling2D(2, mode="bilinear")(10 * x)[0, 0, :, 0].numpy()
    array([10. , 12.5, 17.5, 20. ], dtype=float32)

    References:
        - V. Dumoulin, F. Visin, "A guide to convolution arithmetic for deep
          learning", arXiv:1603.07285, 2016.
        - A. Odena, V. Dumoulin, C. Olah, "Deconvolution and checkerboard
          artifacts", Distill, 2016.
    """

    def __init__(self, size=2, mode="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = pooling.normalize_pair(size, "size")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self._resize = None
        if mode != "bed_of_nails":
            self._resize = keras.layers.UpSampling2D(
                size=self.size,
                data_format="channels_last",
                interpolation=mode,
                dtype=self.dtype_policy,
                name="resize",
            )

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "Upsampling2D expects (batch, height, width, channels) inputs, "
                f"got shape {input_shape}"
            )
        if self._resize is not None:
            self._resize.build(input_shape)

    def call(self, inputs):
        if self._resize is None:
            return upsampling.bed_of_nails_upsample(inputs, self.size)
        return self._resize(inputs)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (
            batch,
            None if height is None else height * self.size[0],
            None if width is None else width * self.size[1],
            channels,
        )

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "mode": self.mode})
        return config
