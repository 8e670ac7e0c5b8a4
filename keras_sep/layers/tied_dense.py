"""Dense decoder layer whose kernel is the transpose of an encoder's kernel."""
import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_sep")
class TiedDense(keras.layers.Layer):
    """Dense layer reusing the transposed kernel of a ``keras.layers.Dense``.

    For an encoder ``h = act(x @ W + b_enc)`` made by ``tied_to``, this layer
    computes ``y = activation(h @ W.T + b)``: the decoder weight is
    ``W_dec = W_encᵀ`` and only the bias ``b`` is its own. The encoder owns
    the kernel, so a model that holds both layers has a single kernel
    variable per encoder/decoder pair and both sides' gradients add up in it
    (Hinton & Salakhutdinov's deep autoencoder ties ``W6 = W1ᵀ``,
    ``W5 = W2ᵀ``, ``W4 = W3ᵀ`` this way).

    The kernel is listed in the encoder's weights, not in this layer's:
    ``TiedDense.weights`` holds the bias only, so nothing is counted or
    updated twice. ``kernel`` returns the shared variable (encoder layout).

    Saving: ``get_config`` returns the encoder layer itself under
    ``tied_to``; Keras serialises it into this layer's config. ``.keras``
    saving and loading (``model.save`` / ``keras.saving.load_model``) run
    inside Keras's object-sharing scope, which marks an object serialised
    twice with a ``shared_object_id`` and rebuilds it once, so after loading
    this layer points at the very ``Dense`` instance of the loaded model,
    i.e. at its kernel variable. This holds in Functional and Sequential
    models whichever of the two layers comes first. Constraints:

    - Keep the encoder and the decoder as layers of the same model, not
      split across nested sub-models (``encoder = keras.Model(...)``,
      ``decoder = keras.Model(...)``): Keras 3.15 cannot reload any layer
      shared across nested sub-models, and loading fails with "expected 2
      variables, but received 0".
    - A model holding only the decoder side saves and loads (the encoder
      comes back as a private copy with its weights), but the tie to an
      encoder in another model cannot survive a file.
    - ``Model.from_config(model.get_config())`` runs outside that scope and
      gives each ``TiedDense`` a private copy of its encoder;
      ``keras.models.clone_model`` ties the clone's decoders to the
      original encoders. Use ``.keras`` files, or rebuild the model in code.
    - ``tied_to`` must be built (called once) before this layer is built,
      since its kernel shape gives this layer's output size.

    Args:
        tied_to: the encoder ``keras.layers.Dense`` whose kernel, of shape
            ``(output_dim, units)``, is shared.
        activation: activation of the output; default linear.
        use_bias: whether to add an own bias of shape ``(output_dim,)``.
        bias_initializer: initializer of the bias.
        bias_regularizer: regularizer of the bias.
        bias_constraint: constraint of the bias.
        **kwargs: base layer arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``(..., units)`` tensor, ``units`` being the encoder's
            number of units.

    Input shape:
        ``(batch, ..., units)``.

    Output shape:
        ``(batch, ..., output_dim)`` with ``output_dim`` the encoder's input
        size (None until ``tied_to`` is built).

    Example:

    >>> import numpy as np
    >>> x = keras.Input((784,))
    >>> encoder = keras.layers.Dense(30, name="encoder")
    >>> decoder = TiedDense(encoder, activation="sigmoid", name="decoder")
    >>> model = keras.Model(x, decoder(encoder(x)))
    >>> [tuple(w.shape) for w in model.weights]
    [(784, 30), (30,), (784,)]
    >>> model(np.zeros((2, 784), "float32")).shape
    TensorShape([2, 784])

    References:
        - G. E. Hinton, R. R. Salakhutdinov, "Reducing the dimensionality of
          data with neural networks", Science, 2006.
        - P. Vincent et al., "Stacked denoising autoencoders", JMLR, 2010.
    """

    def __init__(
        self,
        tied_to,
        activation=None,
        use_bias=True,
        bias_initializer="zeros",
        bias_regularizer=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(tied_to, keras.layers.Dense):
            raise ValueError(
                f"tied_to must be a keras.layers.Dense layer, got {tied_to!r}"
            )
        # Set past Keras's attribute tracking on purpose: a tracked encoder
        # would make its kernel and bias weights of this layer too.
        object.__setattr__(self, "_tied_to", tied_to)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.bias = None

    @property
    def tied_to(self):
        """The encoder ``Dense`` layer that owns the kernel."""
        return self._tied_to

    @property
    def kernel(self):
        """The shared kernel variable, shape ``(output_dim, units)``."""
        return self._tied_to.kernel

    @property
    def output_dim(self):
        """Size of the last output axis, None until ``tied_to`` is built."""
        if not self._tied_to.built:
            return None
        return int(self._tied_to.kernel.shape[0])

    def build(self, input_shape):
        if not self._tied_to.built:
            raise ValueError(
                f"The encoder layer {self._tied_to.name!r} must be built (called "
                f"on an input) before TiedDense {self.name!r} is built."
            )
        units = int(self._tied_to.kernel.shape[1])
        if input_shape[-1] is not None and input_shape[-1] != units:
            raise ValueError(
                f"TiedDense {self.name!r} expects inputs with {units} features "
                f"(the units of {self._tied_to.name!r}), got shape {input_shape}"
            )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.output_dim,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )

    def call(self, inputs):
        kernel = ops.cast(self._tied_to.kernel, self.compute_dtype)
        outputs = ops.matmul(inputs, ops.transpose(kernel))
        if self.bias is not None:
            outputs = ops.add(outputs, ops.cast(self.bias, self.compute_dtype))
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                # Left unserialised: Keras's serialiser then records the
                # dict it puts in the saved config, so the object-sharing
                # scope can mark it even when the encoder comes later in
                # the model (a pre-serialised dict would be copied first).
                "tied_to": self._tied_to,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "bias_regularizer": keras.regularizers.serialize(
                    self.bias_regularizer
                ),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["tied_to"], dict):
            # Inside .keras loading this returns the model's own encoder
            # instance (shared_object_id); elsewhere it builds a copy.
            config["tied_to"] = keras.saving.deserialize_keras_object(
                config["tied_to"]
            )
        return cls(**config)
