"""Max unpooling layer: pooled values back at the positions of their maxima."""
import keras
import tensorflow as tf

from keras_sep.ops import pooling, unpooling


@keras.saving.register_keras_serializable(package="keras_sep")
class MaxUnpooling2D(keras.layers.Layer):
    """Inverse of :class:`MaxPoolingWithArgmax2D`, zeros where no maximum was.

    Each value is written at the flat position its argmax names, inside a
    zero tensor of the unpooled size; this is SegNet's decoder upsampling,
    which restores the fine positions that plain upsampling loses.
    Positions named twice (overlapping windows, ``strides < pool_size``)
    keep the largest value, which for pooled values is the one maximum they
    all share; see ``keras_sep.ops.unpooling.max_unpool`` for the gradient.

    The unpooled spatial size, in order of precedence:

    1. a third input, a reference tensor (usually the encoder tensor that
       was pooled): its run-time ``height`` and ``width`` are used, which
       keeps odd sizes (5 pooled to 2 comes back as 5, not 4) in models
       whose input length is only known when they run;
    2. ``output_size=(height, width)`` given to the constructor;
    3. otherwise the largest size that pools to the input size:
       ``(size - 1) * stride + pool`` for ``"valid"``, ``size * stride``
       for ``"same"``.

    The argmax indices are only meaningful against the size of the tensor
    that was pooled: use 1 or 2 whenever that size need not be the default.
    Indices that cannot come from pooling a tensor of the size used (with
    this layer's ``pool_size``, ``strides`` and ``padding``) raise
    ``tf.errors.InvalidArgumentError`` when the model runs, e.g. those of a
    7 × 9 tensor unpooled to the default 6 × 8, rather than landing in
    wrong places (see ``keras_sep.ops.unpooling.max_unpool``; XLA compiles
    the check away).

    Args:
        pool_size: int or ``(rows, columns)``, the pooling window that gave
            the indices.
        strides: int or pair, the pooling strides; ``None`` means
            ``pool_size``.
        padding: ``"valid"`` or ``"same"``, the pooling padding.
        output_size: optional ``(height, width)`` of the unpooled tensor.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[values, indices]`` or ``[values, indices, reference]``:
            ``values`` ``(batch, height, width, channels)``, ``indices`` the
            integer argmax of the same shape from
            :class:`MaxPoolingWithArgmax2D`, ``reference`` any tensor
            ``(batch, out_height, out_width, ...)`` giving the output size.

    Input shape:
        ``values`` and ``indices``: ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, out_height, out_width, channels)`` in the compute dtype.

    Example:

    >>> import numpy as np
    >>> from keras_sep.layers import MaxPoolingWithArgmax2D
    >>> x = np.random.rand(2, 5, 7, 3).astype("float32")
    >>> pooled, argmax = MaxPoolingWithArgmax2D(pool_size=2)(x)
    >>> MaxUnpooling2D(pool_size=2)([pooled, argmax, x]).shape
    TensorShape([2, 5, 7, 3])
    >>> MaxUnpooling2D(pool_size=2, output_size=(5, 7))([pooled, argmax]).shape
    TensorShape([2, 5, 7, 3])

    References:
        - V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet: A deep
          convolutional encoder-decoder architecture for image
          segmentation", IEEE TPAMI, 2017.
        - H. Noh, S. Hong, B. Han, "Learning deconvolution network for
          semantic segmentation", ICCV, 2015.
    """

    def __init__(
        self, pool_size=2, strides=None, padding="valid", output_size=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.pool_size = pooling.normalize_pair(pool_size, "pool_size")
        self.strides = pooling.normalize_pair(
            self.pool_size if strides is None else strides, "strides"
        )
        self.padding = pooling.normalize_padding(padding)
        self.output_size = (
            None
            if output_size is None
            else pooling.normalize_pair(output_size, "output_size")
        )

    def _check_inputs(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError(
                "MaxUnpooling2D expects [values, indices] or "
                f"[values, indices, reference], got {inputs!r}"
            )

    def build(self, input_shape):
        self._check_inputs(input_shape)
        if len(input_shape[0]) != 4 or len(input_shape[1]) != 4:
            raise ValueError(
                "MaxUnpooling2D expects 4-D values and indices, got shapes "
                f"{input_shape[0]} and {input_shape[1]}"
            )

    def _default_size(self, height, width):
        (pool_h, pool_w), (stride_h, stride_w) = self.pool_size, self.strides
        return (
            pooling.unpooled_length(height, pool_h, stride_h, self.padding),
            pooling.unpooled_length(width, pool_w, stride_w, self.padding),
        )

    def call(self, inputs):
        self._check_inputs(inputs)
        values, indices = inputs[0], inputs[1]
        if len(inputs) == 3:
            reference_shape = tf.shape(inputs[2])
            size = (reference_shape[1], reference_shape[2])
        elif self.output_size is not None:
            size = self.output_size
        else:
            shape = tf.shape(values)
            size = self._default_size(shape[1], shape[2])
        return unpooling.max_unpool(
            values, indices, size, self.pool_size, self.strides, self.padding
        )

    def compute_output_shape(self, input_shape):
        self._check_inputs(input_shape)
        batch, height, width, channels = input_shape[0]
        if len(input_shape) == 3:
            height, width = tuple(input_shape[2])[1:3]
        elif self.output_size is not None:
            height, width = self.output_size
        else:
            height, width = self._default_size(height, width)
        return (batch, height, width, channels)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "strides": self.strides,
                "padding": self.padding,
                "output_size": self.output_size,
            }
        )
        return config
