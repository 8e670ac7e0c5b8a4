"""Convolution block of a U-Net encoder: Conv2D, batch norm, activation."""
import keras

from keras_sep.layers._block_utils import ConvBlockBase


@keras.saving.register_keras_serializable(package="keras_sep")
class Conv2DBlock(ConvBlockBase):
    """``Conv2D`` → batch norm and activation (either order) → dropout.

    The encoder stage of the Jansson et al. / Spleeter U-Net: a strided 5×5
    convolution that halves frames and bins, batch normalisation, a leaky
    ReLU of slope 0.2. With ``return_conv_output=True`` the block also
    returns the raw convolution output (before batch norm and activation),
    the tensor Spleeter passes along its skip connections.

    The sublayers are public attributes so a checkpoint loader can assign
    ``block.conv.kernel`` ``(kh, kw, in, filters)``, ``block.conv.bias``
    and ``block.batch_norm.{gamma, beta, moving_mean, moving_variance}``.

    Args:
        filters: output channels.
        kernel_size: int or ``(rows, columns)`` pair.
        strides: int or pair; cannot exceed 1 when ``dilation_rate`` does.
        padding: ``"same"`` (``ceil(n / stride)`` outputs) or ``"valid"``.
        dilation_rate: int or pair.
        activation: ``"relu"``, ``"leaky_relu"``, ``"elu"``, ``"sigmoid"``,
            ``"linear"`` or None (identity).
        negative_slope: slope of ``"leaky_relu"`` below zero.
        batch_norm: whether to batch-normalise; ``block.batch_norm`` is None
            when False.
        order: ``"bn_act"`` (batch norm, then activation) or ``"act_bn"``.
        dropout: dropout rate after both, 0 for none (``block.dropout`` is
            then None).
        use_bias: whether the convolution has a bias.
        kernel_initializer: initializer of the convolution kernel.
        bn_momentum: momentum of the batch-norm moving statistics.
        bn_epsilon: epsilon added to the batch-norm variance.
        return_conv_output: also return the raw convolution output.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(batch, frames, bins, channels)`` tensor.
        training: batch statistics and dropout when True; moving statistics
            and no dropout when False.

    Input shape:
        ``(batch, frames, bins, channels)``; batch, frames and bins may be
        None.

    Output shape:
        ``(batch, frames', bins', filters)``, ``frames' = ceil(frames /
        strides)`` for ``"same"`` padding; with ``return_conv_output`` a
        pair ``(output, conv_output)`` of that shape.

    Example:

    >>> import numpy as np
    >>> block = Conv2DBlock(16, return_conv_output=True)
    >>> out, skip = block(np.zeros((2, 64, 32, 2), "float32"))
    >>> out.shape, skip.shape
    (TensorShape([2, 32, 16, 16]), TensorShape([2, 32, 16, 16]))

    References:
        - A. Jansson et al., "Singing voice separation with deep U-Net
          convolutional networks", ISMIR 2017.
        - S. Ioffe, C. Szegedy, "Batch normalization", ICML 2015.
        - R. Hennequin et al., "Spleeter: a fast and efficient music source
          separation tool with pre-trained models", JOSS, 2020.
    """

    conv_class = keras.layers.Conv2D

    def __init__(
        self,
        filters,
        kernel_size=5,
        strides=2,
        padding="same",
        dilation_rate=1,
        activation="leaky_relu",
        negative_slope=0.2,
        batch_norm=True,
        order="bn_act",
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
