"""Max pooling layer that also returns where each maximum was."""
import keras

from keras_sep.ops import pooling


@keras.saving.register_keras_serializable(package="keras_sep")
class MaxPoolingWithArgmax2D(keras.layers.Layer):
    """2-D max pooling returning ``(pooled, argmax)`` for SegNet-style decoders.

    ``pooled`` is ordinary max pooling; ``argmax`` holds, for every pooled
    value, the flat position of the maximum inside its own example, so that
    :class:`MaxUnpooling2D` can later put values back where the maxima were.
    Ties go to the first maximum in row-major window order, the same on
    every device (see ``keras_sep.ops.pooling.max_pool_with_argmax``).

    Args:
        pool_size: int or ``(rows, columns)`` pooling window.
        strides: int or pair; ``None`` means ``pool_size``.
        padding: ``"valid"`` or ``"same"`` (TensorFlow's padding rule).
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, height, width, channels)`` tensor, e.g. a
            spectrogram ``(batch, frames, bins, channels)``.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        Two tensors ``(batch, out_height, out_width, channels)``: the pooled
        values in the compute dtype, and int64 ``argmax`` indices into the
        flattened ``(height, width, channels)`` of each example, i.e.
        ``(row * width + column) * channels + channel``. With
        ``"valid"``, ``out = (size - pool) // stride + 1``; with ``"same"``,
        ``out = ceil(size / stride)``.

    Example:

    >>> import numpy as np
    >>> x = np.arange(16, dtype="float32").reshape(1, 4, 4, 1)
    >>> pooled, argmax = MaxPoolingWithArgmax2D(pool_size=2)(x)
    >>> pooled[0, :, :, 0].numpy()
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    >>> argmax[0, :, :, 0].numpy()
    array([[ 5,  7],
           [13, 15]])

    References:
        - V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet: A deep
          convolutional encoder-decoder architecture for image
          segmentation", IEEE TPAMI, 2017.
        - M. D. Zeiler, R. Fergus, "Visualizing and understanding
          convolutional networks", ECCV, 2014 (switches).
    """

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = pooling.normalize_pair(pool_size, "pool_size")
        self.strides = pooling.normalize_pair(
            self.pool_size if strides is None else strides, "strides"
        )
        self.padding = pooling.normalize_padding(padding)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "MaxPoolingWithArgmax2D expects (batch, height, width, channels) "
                f"inputs, got shape {input_shape}"
            )

    def call(self, inputs):
        return pooling.max_pool_with_argmax(
            inputs, self.pool_size, self.strides, self.padding
        )

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        (pool_h, pool_w), (stride_h, stride_w) = self.pool_size, self.strides
        shape = (
            batch,
            pooling.pooled_length(height, pool_h, stride_h, self.padding),
            pooling.pooled_length(width, pool_w, stride_w, self.padding),
            channels,
        )
        return shape, shape

    def compute_output_spec(self, inputs):
        # The default would give both outputs the compute dtype.
        shape, _ = self.compute_output_shape(tuple(inputs.shape))
        return (
            keras.KerasTensor(shape, dtype=self.compute_dtype),
            keras.KerasTensor(shape, dtype="int64"),
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
            }
        )
        return config
