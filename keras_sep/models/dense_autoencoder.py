"""Fully connected autoencoder: encoder → code → mirrored decoder."""
import keras

from keras_sep.layers.tied_dense import TiedDense
from keras_sep.models._autoencoder_utils import (
    CodecMixin,
    cached_submodel,
    chain_model,
    check_model_kwargs,
    check_units,
)


@keras.saving.register_keras_serializable(package="keras_sep")
class DenseAutoencoder(CodecMixin, keras.Model):
    """Dense encoder → code → mirrored dense decoder, trained on ``||x − x̂||²``.

    The encoder maps ``input_dim`` features through ``hidden`` layers to a
    ``code_dim`` code; the decoder mirrors it (``hidden`` reversed) back to
    ``input_dim``. With ``tied=True`` each decoder layer is a
    :class:`~keras_sep.layers.TiedDense` reusing the transposed kernel of
    its mirror encoder layer (Hinton & Salakhutdinov's ``W6 = W1ᵀ``,
    ``W5 = W2ᵀ``, ``W4 = W3ᵀ``), so the model holds half the kernels;
    biases stay separate.

    The model is flat: every encoder and decoder layer is a layer of this
    model. ``encoder`` and ``decoder`` are separate functional models over
    the same layer objects, built on first access and never nested, so
    ties survive ``.keras`` files. Layers are named ``encoder_{i}``,
    ``code``, ``decoder_{i}`` and ``reconstruction``.

    Args:
        input_dim: number of input features.
        hidden: sizes of the encoder's hidden layers, input side first.
        code_dim: size of the code (the bottleneck).
        activation: activation of the hidden layers of both halves.
        code_activation: activation of the code layer; None (linear) as in
            Hinton & Salakhutdinov.
        output_activation: activation of the reconstruction: ``"sigmoid"``
            for data in ``[0, 1]``, None for unbounded data.
        tied: tie each decoder kernel to its mirror encoder kernel.
        kernel_initializer: initializer of the (encoder) kernels.
        **kwargs: ``keras.Model`` arguments (``name``, ...).

    Call arguments:
        inputs: ``(batch, input_dim)`` tensor.
        training: passed to the layers.

    Input shape:
        ``(batch, input_dim)``.

    Output shape:
        ``(batch, input_dim)``: the reconstruction ``x̂``.

    Example:

    >>> import numpy as np
    >>> model = DenseAutoencoder(64, hidden=(32, 16), code_dim=2)
    >>> model.compile("adam", "mse")
    >>> model(np.zeros((3, 64), "float32")).shape
    TensorShape([3, 64])
    >>> model.encoder(np.zeros((3, 64), "float32")).shape
    TensorShape([3, 2])

    References:
        - G. E. Hinton, R. R. Salakhutdinov, "Reducing the dimensionality of
          data with neural networks", Science, 2006.
    """

    def __init__(
        self,
        input_dim,
        hidden=(256, 128),
        code_dim=32,
        activation="relu",
        code_activation=None,
        output_activation="sigmoid",
        tied=False,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        input_dim = int(input_dim)
        code_dim = int(code_dim)
        hidden = check_units("hidden", hidden)
        check_units("input_dim and code_dim", (input_dim, code_dim))

        # === Encoder ===
        inputs = keras.Input(shape=(input_dim,), name="inputs")
        encoder_layers = [
            keras.layers.Dense(
                units,
                activation=activation,
                kernel_initializer=kernel_initializer,
                name=f"encoder_{i}",
            )
            for i, units in enumerate(hidden)
        ]
        encoder_layers.append(
            keras.layers.Dense(
                code_dim,
                activation=code_activation,
                kernel_initializer=kernel_initializer,
                name="code",
            )
        )
        x = inputs
        for layer in encoder_layers:
            x = layer(x)

        # === Decoder: the encoder mirrored, tied or not ===
        decoder_units = hidden[::-1] + (input_dim,)
        decoder_layers = []
        for i, (mirror, units) in enumerate(zip(encoder_layers[::-1], decoder_units)):
            last = i == len(decoder_units) - 1
            act = output_activation if last else activation
            name = "reconstruction" if last else f"decoder_{i}"
            if tied:
                layer = TiedDense(mirror, activation=act, name=name)
            else:
                layer = keras.layers.Dense(
                    units, activation=act, kernel_initializer=kernel_initializer, name=name
                )
            decoder_layers.append(layer)
            x = layer(x)

        check_model_kwargs(type(self), kwargs)
        super().__init__(inputs=inputs, outputs=x, **kwargs)

        # === Config ===
        self.input_dim = input_dim
        self.hidden = hidden
        self.code_dim = code_dim
        self.activation = activation
        self.code_activation = code_activation
        self.output_activation = output_activation
        self.tied = bool(tied)
        self.kernel_initializer = keras.initializers.serialize(
            keras.initializers.get(kernel_initializer)
        )

    @property
    def encoder_layers(self):
        """The encoder's ``Dense`` layers, input side first, code last."""
        names = [f"encoder_{i}" for i in range(len(self.hidden))] + ["code"]
        return [self.get_layer(name) for name in names]

    @property
    def decoder_layers(self):
        """The decoder's layers, code side first, reconstruction last."""
        names = [f"decoder_{i}" for i in range(len(self.hidden))] + ["reconstruction"]
        return [self.get_layer(name) for name in names]

    @property
    def encoder(self):
        """Functional model ``(batch, input_dim) → (batch, code_dim)``."""
        return cached_submodel(
            self,
            "_encoder_model",
            lambda: chain_model(self.encoder_layers, (self.input_dim,), f"{self.name}_encoder"),
        )

    @property
    def decoder(self):
        """Functional model ``(batch, code_dim) → (batch, input_dim)``."""
        return cached_submodel(
            self,
            "_decoder_model",
            lambda: chain_model(self.decoder_layers, (self.code_dim,), f"{self.name}_decoder"),
        )




    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "input_dim": self.input_dim,
            "hidden": list(self.hidden),
            "code_dim": self.code_dim,
            "activation": self.activation,
            "code_activation": self.code_activation,
            "output_activation": self.output_activation,
            "tied": self.tied,
            "kernel_initializer": self.kernel_initializer,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def dense_autoencoder(
    input_dim,
    hidden=(256, 128),
    code_dim=32,
    activation="relu",
    output_activation="sigmoid",
    **kwargs,
):
    """Build a :class:`DenseAutoencoder`; further keyword arguments as there.

    Example:

    >>> model = dense_autoencoder(64, hidden=(32,), code_dim=8)
    >>> [layer.name for layer in model.layers[1:]]
    ['encoder_0', 'code', 'decoder_0', 'reconstruction']
    """
    return DenseAutoencoder(
        input_dim,
        hidden=hidden,
        code_dim=code_dim,
        activation=activation,
        output_activation=output_activation,
        **kwargs,
    )
