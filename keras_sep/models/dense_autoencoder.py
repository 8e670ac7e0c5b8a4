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
from keras_sep.models._pretraining import pretrain_layerwise


def default_kernel_initializer(activation):
    """Glorot uniform, four times as wide for logistic (sigmoid) units.

    Glorot & Bengio (2010) derive the ``±sqrt(6 / (fan_in + fan_out))``
    range for units of slope 1 at 0, and four times that range for the
    logistic, whose slope there is 1/4. With the narrow range every logistic
    unit of a deep autoencoder sits near 0.5, the code carries almost
    nothing and Adam leaves the model at the mean input (measured on the
    8×8 digits: 1.4× PCA's error after 300 epochs); with the wide one the
    same model trains end to end without pretraining.

    Example:

    >>> default_kernel_initializer("sigmoid").get_config()["scale"]
    16.0
    >>> type(default_kernel_initializer("relu")).__name__
    'GlorotUniform'
    """
    if keras.activations.get(activation) is keras.activations.sigmoid:
        return keras.initializers.VarianceScaling(16.0, mode="fan_avg", distribution="uniform")
    return keras.initializers.GlorotUniform()


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
        kernel_initializer: initializer of the (encoder) kernels;
            ``"auto"``: :func:`default_kernel_initializer` of ``activation``.
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
        kernel_initializer="auto",
        **kwargs,
    ):
        if isinstance(kernel_initializer, str) and kernel_initializer == "auto":
            kernel_initializer = default_kernel_initializer(activation)
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

    def pretrain(self, x, epochs=50, method="rbm", batch_size=100, learning_rate=None, k=1,
                 seed=0, verbose=1):
        """Greedy layer-wise pretraining of the encoder, before ``fit``.

        ``method="rbm"`` (Hinton & Salakhutdinov): each encoder layer, input
        side first, is trained as a restricted Boltzmann machine with
        contrastive divergence (CD-``k``) on the hidden means of the layers
        below it: Bernoulli visible units, Bernoulli hidden units for the
        logistic layers and Gaussian ones for a linear code layer. It needs
        ``activation="sigmoid"`` and ``output_activation="sigmoid"`` (data
        in ``[0, 1]``). Each RBM starts from ``N(0, 0.1²)`` weights and zero
        biases and uses the paper's settings: learning rate 0.1 (0.001 for
        the Gaussian layer), momentum 0.5 for 5 epochs then 0.9, weight cost
        2·10⁻⁴. ``method="autoencoder"`` trains each layer as a shallow tied
        autoencoder with Adam on the squared error instead, for any
        activation.

        The RBM of layer ``i`` is the encoder layer itself (kernel ``W``,
        hidden bias) with the bias of its mirror decoder layer as visible
        bias; an untied decoder gets ``Wᵀ`` afterwards. Every weight of the
        model is thus initialised; train end to end with ``compile`` and
        ``fit`` afterwards (the paper's fine-tuning).

        Args:
            x: ``(examples, input_dim)`` array (shuffled with ``seed`` each
                epoch), or a ``tf.data.Dataset`` of inputs or ``(inputs,
                targets)`` pairs, batched or not.
            epochs: epochs per layer (50 in the paper).
            method: ``"rbm"`` or ``"autoencoder"``.
            batch_size: batch size for arrays and unbatched datasets.
            learning_rate: learning rate of the logistic layers (the
                Gaussian layer's is a hundredth of it), or of Adam for
                ``"autoencoder"`` (default 1e-3); None for the defaults.
            k: Gibbs steps of contrastive divergence.
            seed: seed of the initial weights, shuffling and sampling:
                the same seed and data give the same weights.
            verbose: 0 silent, 1 a progress bar per layer.

        Returns:
            ``{layer name: [reconstruction error per epoch]}``.

        Example:

        >>> import numpy as np
        >>> x = np.random.default_rng(0).random((64, 16)).astype("float32")
        >>> model = DenseAutoencoder(16, hidden=(8,), code_dim=2, activation="sigmoid")
        >>> history = model.pretrain(x, epochs=2, verbose=0)
        >>> list(history), len(history["code"])
        (['encoder_0', 'code'], 2)
        """
        return pretrain_layerwise(self, x, epochs=epochs, method=method, batch_size=batch_size,
                                  learning_rate=learning_rate, k=k, seed=seed, verbose=verbose)

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
