"""Shared body of the convolution blocks: argument checks, activations, call.

Private: the public classes are ``Conv2DBlock`` and ``Conv2DTransposeBlock``,
which differ only in their convolution layer and their defaults.
"""
import keras
from keras import ops

ACTIVATIONS = ("relu", "leaky_relu", "elu", "sigmoid", "linear", None)
ORDERS = ("bn_act", "act_bn")


def _as_pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def validate_block_args(activation, order, dropout, strides, dilation_rate, negative_slope):
    """Raise ``ValueError`` quoting the value of any bad block argument."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    if negative_slope < 0:
        raise ValueError(f"negative_slope must be >= 0, got {negative_slope!r}")
    if max(_as_pair(strides)) > 1 and max(_as_pair(dilation_rate)) > 1:
        raise ValueError(
            "strides > 1 cannot be combined with dilation_rate > 1, got "
            f"strides={strides!r} and dilation_rate={dilation_rate!r}"
        )


def make_activation(activation, negative_slope=0.2):
    """The activation as a function of a tensor; identity for linear/None."""
    if activation == "relu":
        return ops.relu
    if activation == "leaky_relu":
        return lambda x: ops.leaky_relu(x, negative_slope=negative_slope)
    if activation == "elu":
        return ops.elu
    if activation == "sigmoid":
        return ops.sigmoid
    if activation in ("linear", None):
        return lambda x: x
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


class ConvBlockBase(keras.layers.Layer):
    """Convolution, batch norm and activation in either order, then dropout.

    Subclasses set ``conv_class`` (``Conv2D`` or ``Conv2DTranspose``) and
    their own defaults and docstring.
    """

    conv_class = None

    def __init__(
        self,
        filters,
        kernel_size,
        strides,
        padding,
        dilation_rate,
        activation,
        negative_slope,
        batch_norm,
        order,
        dropout,
        use_bias,
        kernel_initializer,
        bn_momentum,
        bn_epsilon,
        return_conv_output,
        **kwargs,
    ):
        super().__init__(**kwargs)
        validate_block_args(
            activation, order, dropout, strides, dilation_rate, negative_slope
        )
        self.filters = int(filters)
        self.kernel_size = kernel_size
        self.strides = strides
        self.padding = padding
        self.dilation_rate = dilation_rate
        self.activation = activation
        self.negative_slope = float(negative_slope)
        self.use_batch_norm = bool(batch_norm)
        self.order = order
        self.dropout_rate = float(dropout)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bn_momentum = float(bn_momentum)
        self.bn_epsilon = float(bn_epsilon)
        self.return_conv_output = bool(return_conv_output)
        self._activation_fn = make_activation(activation, self.negative_slope)

        # Sublayers keep public names so checkpoint loaders can assign
        # block.conv.kernel, block.batch_norm.moving_mean, ...
        self.conv = self.conv_class(
            self.filters,
            kernel_size,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="conv",
        )
        self.batch_norm = (
            keras.layers.BatchNormalization(
                momentum=self.bn_momentum,
                epsilon=self.bn_epsilon,
                dtype=self.dtype_policy,
                name="batch_norm",
            )
            if self.use_batch_norm
            else None
        )
        self.dropout = (
            keras.layers.Dropout(self.dropout_rate, dtype=self.dtype_policy, name="dropout")
            if self.dropout_rate > 0
            else None
        )

    def build(self, input_shape):
        self.conv.build(input_shape)
        if self.batch_norm is not None:
            self.batch_norm.build(self.conv.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        conv_output = self.conv(inputs)
        x = conv_output
        if self.order == "act_bn":
            x = self._activation_fn(x)
        if self.batch_norm is not None:
            x = self.batch_norm(x, training=training)
        if self.order == "bn_act":
            x = self._activation_fn(x)
        if self.dropout is not None:
            x = self.dropout(x, training=training)
        if self.return_conv_output:
            return x, conv_output
        return x

    def compute_output_shape(self, input_shape):
        shape = tuple(self.conv.compute_output_shape(input_shape))
        return (shape, shape) if self.return_conv_output else shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "dilation_rate": self.dilation_rate,
                "activation": self.activation,
                "negative_slope": self.negative_slope,
                "batch_norm": self.use_batch_norm,
                "order": self.order,
                "dropout": self.dropout_rate,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bn_momentum": self.bn_momentum,
                "bn_epsilon": self.bn_epsilon,
                "return_conv_output": self.return_conv_output,
            }
        )
        return config
