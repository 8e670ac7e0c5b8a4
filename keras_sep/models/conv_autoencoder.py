"""Convolutional autoencoder: conv + pooling down, transposed conv up."""
import math

import keras

from keras_sep.layers.conv_block import Conv2DBlock
from keras_sep.layers.conv_transpose_block import Conv2DTransposeBlock
from keras_sep.layers.upsampling import Upsampling2D
from keras_sep.models._autoencoder_utils import (
    CodecMixin,
    cached_submodel,
    chain_model,
    check_model_kwargs,
    check_units,
)

DOWNSAMPLING = ("pool", "stride")
UPSAMPLING = ("transpose", "nearest", "bilinear", "bed_of_nails")


@keras.saving.register_keras_serializable(package="keras_sep")
class ConvAutoencoder(CodecMixin, keras.Model):
    """Conv2D/pooling encoder → code → mirrored up-sampling decoder.

    Each encoder stage is a :class:`~keras_sep.layers.Conv2DBlock` followed
    by 2×2 max pooling (``downsampling="pool"``) or a stride-2 block
    (``"stride"``), halving height and width. With ``code_dim`` a dense
    bottleneck flattens the last feature map to a ``code_dim`` vector and
    back; without it the code is the last feature map. Each decoder stage
    doubles height and width with a stride-2
    :class:`~keras_sep.layers.Conv2DTransposeBlock` (``upsampling=
    "transpose"``) or a fixed :class:`~keras_sep.layers.Upsampling2D` then a
    ``Conv2DBlock``; a final convolution returns ``channels`` maps.

    Like :class:`DenseAutoencoder`, the model is flat and ``encoder`` /
    ``decoder`` are separate functional models over its layers.

    Args:
        input_shape: ``(height, width, channels)``; height and width must be
            multiples of ``2 ** len(filters)``.
        filters: encoder filters per stage; the decoder mirrors them.
        kernel_size: kernel of every convolution.
        code_dim: size of a dense code, or None for a convolutional code.
        downsampling: ``"pool"`` or ``"stride"``.
        upsampling: ``"transpose"``, ``"nearest"``, ``"bilinear"`` or
            ``"bed_of_nails"``.
        activation: activation of the blocks (see ``Conv2DBlock``).
        batch_norm: whether the blocks batch-normalise.
        output_activation: activation of the reconstruction (``"sigmoid"``
            for images in ``[0, 1]``, None for unbounded data).
        **kwargs: ``keras.Model`` arguments (``name``, ...).

    Call arguments:
        inputs: images ``(batch, height, width, channels)``.
        training: batch statistics of batch norm.

    Input shape:
        ``(batch, height, width, channels)``.

    Output shape:
        ``(batch, height, width, channels)``; the code is ``(batch,
        code_dim)`` or ``(batch, height / 2**n, width / 2**n, filters[-1])``.

    Example:

    >>> import numpy as np
    >>> model = ConvAutoencoder((16, 16, 1), filters=(8, 16), code_dim=10)
    >>> model(np.zeros((2, 16, 16, 1), "float32")).shape
    TensorShape([2, 16, 16, 1])
    >>> model.encoder.output_shape, model.decoder.output_shape
    ((None, 10), (None, 16, 16, 1))

    References:
        - J. Masci, U. Meier, D. Cireşan, J. Schmidhuber, "Stacked
          convolutional auto-encoders for hierarchical feature extraction",
          ICANN 2011.
    """

    def __init__(
        self,
        input_shape,
        filters=(16, 32),
        kernel_size=3,
        code_dim=None,
        downsampling="pool",
        upsampling="transpose",
        activation="relu",
        batch_norm=False,
        output_activation="sigmoid",
        **kwargs,
    ):
        input_shape = tuple(input_shape)
        filters = check_units("filters", filters, allow_empty=False)
        if len(input_shape) != 3:
            raise ValueError(
                f"input_shape must be (height, width, channels), got {input_shape!r}"
            )
        if downsampling not in DOWNSAMPLING:
            raise ValueError(f"downsampling must be one of {DOWNSAMPLING}, got {downsampling!r}")
        if upsampling not in UPSAMPLING:
            raise ValueError(f"upsampling must be one of {UPSAMPLING}, got {upsampling!r}")
        factor = 2 ** len(filters)
        for size in input_shape[:2]:
            if size is None or size % factor:
                raise ValueError(
                    f"height and width must be multiples of {factor}, got {input_shape!r}"
                )
        block_args = dict(kernel_size=kernel_size, activation=activation, batch_norm=batch_norm)

        # === Encoder ===
        encoder_layers = []
        for stage, stage_filters in enumerate(filters):
            strided = downsampling == "stride"
            encoder_layers.append(
                Conv2DBlock(
                    stage_filters, strides=2 if strided else 1, name=f"encoder_{stage}",
                    **block_args,
                )
            )
            if not strided:
                encoder_layers.append(keras.layers.MaxPooling2D(2, name=f"pool_{stage}"))
        feature_shape = (input_shape[0] // factor, input_shape[1] // factor, filters[-1])
        decoder_layers = []
        if code_dim is not None:
            code_dim = int(code_dim)
            encoder_layers += [
                keras.layers.Flatten(name="flatten"),
                keras.layers.Dense(code_dim, name="code"),
            ]
            decoder_layers += [
                keras.layers.Dense(
                    math.prod(feature_shape), activation=activation, name="decoder_dense"
                ),
                keras.layers.Reshape(feature_shape, name="decoder_reshape"),
            ]

        # === Decoder: mirrored stages, then the reconstruction ===
        for stage, stage_filters in enumerate(filters[::-1]):
            if upsampling == "transpose":
                decoder_layers.append(
                    Conv2DTransposeBlock(
                        stage_filters, strides=2, order="bn_act", name=f"decoder_{stage}",
                        **block_args,
                    )
                )
            else:
                decoder_layers += [
                    Upsampling2D(2, mode=upsampling, name=f"upsample_{stage}"),
                    Conv2DBlock(stage_filters, strides=1, name=f"decoder_{stage}", **block_args),
                ]
        decoder_layers.append(
            keras.layers.Conv2D(
                input_shape[-1], kernel_size, padding="same",
                activation=output_activation, name="reconstruction",
            )
        )

        inputs = keras.Input(shape=input_shape, name="inputs")
        x = inputs
        for layer in encoder_layers:
            x = layer(x)
        code_shape = tuple(x.shape[1:])
        for layer in decoder_layers:
            x = layer(x)
        check_model_kwargs(type(self), kwargs)
        super().__init__(inputs=inputs, outputs=x, **kwargs)

        # === Config ===
        self.image_shape = input_shape
        self.filters = filters
        self.kernel_size = kernel_size
        self.code_dim = code_dim
        self.downsampling = downsampling
        self.upsampling = upsampling
        self.activation = activation
        self.batch_norm = bool(batch_norm)
        self.output_activation = output_activation
        self.code_shape = code_shape
        self._encoder_names = tuple(layer.name for layer in encoder_layers)
        self._decoder_names = tuple(layer.name for layer in decoder_layers)

    @property
    def encoder(self):
        """Functional model: images → code."""
        return cached_submodel(
            self,
            "_encoder_model",
            lambda: chain_model(
                [self.get_layer(n) for n in self._encoder_names],
                self.image_shape,
                f"{self.name}_encoder",
            ),
        )

    @property
    def decoder(self):
        """Functional model: code → reconstructed images."""
        return cached_submodel(
            self,
            "_decoder_model",
            lambda: chain_model(
                [self.get_layer(n) for n in self._decoder_names],
                self.code_shape,
                f"{self.name}_decoder",
            ),
        )




    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_shape": list(self.image_shape),
            "filters": list(self.filters),
            "kernel_size": self.kernel_size,
            "code_dim": self.code_dim,
            "downsampling": self.downsampling,
            "upsampling": self.upsampling,
            "activation": self.activation,
            "batch_norm": self.batch_norm,
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def conv_autoencoder(input_shape, filters=(16, 32), **kwargs):
    """Build a :class:`ConvAutoencoder`; further keyword arguments as there.

    Example:

    >>> conv_autoencoder((8, 8, 1), filters=(4,), upsampling="nearest").output_shape
    (None, 8, 8, 1)
    """
    return ConvAutoencoder(input_shape, filters=filters, **kwargs)
