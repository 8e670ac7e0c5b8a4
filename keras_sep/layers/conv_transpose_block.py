"""Up-sampling block of a U-Net decoder: Conv2DTranspose, activation, batch norm."""
import keras

from keras_sep.layers._block_utils import ConvBlockBase


@keras.saving.register_keras_serializable(package="keras_sep")
class Conv2DTransposeBlock(ConvBlockBase):
    """``Conv2DTranspose`` → activation and batch norm (either order) → dropout.

    The decoder stage of the Jansson et al. / Spleeter U-Net: a strided 5×5
    transposed convolution that doubles frames and bins, then ReLU, then
    batch normalisation (Spleeter's order, ``"act_bn"``), with 50 % dropout
    on the first stages. ``keras_sep.ops.conv_transpose`` has a numpy
    reference of the transposed convolution, step by step.

    The sublayers are public attributes so a checkpoint loader can assign
    ``block.conv.kernel`` ``(kh, kw, filters, in)``, ``block.conv.bias``
    and ``block.batch_norm.{gamma, beta, moving_mean, moving_variance}``.

    Args:
        filters: output channels.
        kernel_size: int or ``(rows, columns)`` pair.
        strides: int or pair; cannot exceed 1 when ``dilation_rate`` does.
        padding: ``"same"`` (``n * stride`` outputs) or ``"valid"``
            (``(n - 1) * stride + kernel_size`` outputs, at least
            ``n * stride``).
        dilation_rate: int or pair. TensorFlow's CPU kernel for transposed
            convolutions rejects rates above 1.
        activation: ``"relu"``, ``"leaky_relu"``, ``"elu"``, ``"sigmoid"``,
            ``"linear"`` or None (identity).
        negative_slope: slope of ``"leaky_relu"`` below zero.
        batch_norm: whether to batch-normalise; ``block.batch_norm`` is None
            when False.
        order: ``"act_bn"`` (activation, then batch norm) or ``"bn_act"``.
        dropout: dropout rate after both, 0 for none (``block.dropout`` is
            then None).
        use_bias: whether the transposed convolution has a bias.
        kernel_initializer: initializer of the kernel.
        bn_momentum: momentum of the batch-norm moving statistics.
        bn_epsilon: epsilon added to the batch-norm variance.
        return_conv_output: also return the raw transposed-convolution
            output.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, frames, bins, channels)`` tensor.
        training: batch statistics and dropout when True; moving statistics
            and no dropout when False.

    Input shape:
        ``(batch, frames, bins, channels)``; batch, frames and bins may be
        None.

    Output shape:
        ``(batch, frames * strides, bins * strides, filters)`` for
        ``"same"`` padding; with ``return_conv_output`` a pair
        ``(output, conv_output)`` of that shape.

    Example:

    >>> import numpy as np
    >>> block = Conv2DTransposeBlock(8, dropout=0.5)
    >>> block(np.zeros((2, 16, 8, 16), "float32"), training=True).shape
    TensorShape([2, 32, 16, 8])

    References:
        - A. Jansson et al., "Singing voice separation with deep U-Net
          convolutional networks", ISMIR 2017.
        - V. Dumoulin, F. Visin, "A guide to convolution arithmetic for deep
          learning", arXiv:1603.07285, 2016.
        - R. Hennequin et al., "Spleeter: a fast and efficient music source
          separation tool with pre-trained models", JOSS, 2020.
    """

    conv_class = keras.layers.Conv2DTranspose

    def __init__(
        self,
        filters,
        kernel_size=5,
        strides=2,
        padding="same",
        dilation_rate=1,
        activation="relu",
        negative_slope=0.2,
        batch_norm=True,
        order="act_bn",
        dropout=0.0,
        use_bias=True,
        kernel_initializer="he_uniform",
        bn_momentum=0.99,
        bn_epsilon=1e-3,
        return_conv_output=False,
        **kwargs,
    ):
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            activation=activation,
            negative_slope=negative_slope,
            batch_norm=batch_norm,
            order=order,
            dropout=dropout,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bn_momentum=bn_momentum,
            bn_epsilon=bn_epsilon,
            return_conv_output=return_conv_output,
            **kwargs,
        )
