"""Dense decoder layer whose kernel is the transpose of an encoder's kernel."""
import keras
from keras import ops


def _with_nested_layers(layer):
    """``layer`` and, for a model, every layer nested inside it."""
    yield layer
    for inner in getattr(layer, "layers", ()) if isinstance(layer, keras.Model) else ():
        yield from _with_nested_layers(inner)


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

    Every Keras operation keeps the tie or refuses clearly:

    - ``.keras`` saving and loading: ``get_config`` returns the encoder
      itself under ``tied_to`` and Keras's object-sharing scope rebuilds it
      once, so the loaded layer uses the loaded model's encoder (Functional
      and Sequential, either layer first). A model holding only the decoder
      side loads with a private copy of the encoder and its weights.
    - ``keras.models.clone_model`` and ``Model.from_config``: a copy made by
      ``from_config`` re-ties, when it is called in a functional graph, to
      the layer named like its encoder among the layers upstream of its
      input (inside nested models too), i.e. to the clone's own encoder. A
      copy holding the original's live encoder (``clone_model``'s path)
      that finds no such layer raises a ``ValueError`` instead of staying
      tied to the original model.
    - ``TiedDense.from_config`` alone keeps a live encoder (``tied_to`` is
      the same object); from a serialised config (JSON) it holds a copy of
      the encoder that is only a placeholder until the tie is found as
      above or loaded from a file: using it before raises a ``ValueError``.
    - Encoder and decoder in separate nested sub-models (``encoder =
      keras.Model(...)``, ``decoder = keras.Model(...)`` inside an outer
      model) cannot be rebuilt from a config or a ``.keras`` file: Keras
      3's ``Functional.get_config`` deep-copies the inner configs, so a
      layer shared across sub-models comes back as two (keras-team/keras
      #9571). Loading such a file, or calling a decoder rebuilt that way,
      raises a ``ValueError`` naming the layers, rather than decoding with
      a kernel of its own. Keep both in one model and build sub-models as
      views over its layers (as ``DenseAutoencoder.encoder``/``.decoder``
      do), or rebuild the model in code and load weights.
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
        # Set by from_config: a copy re-ties to its model's encoder, and one
        # whose encoder was deserialised waits for that (or a file) first.
        self._from_config = False
        self._live_copy = False
        self._placeholder_encoder = False
        self._encoder_shared_in_file = False
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

    def __call__(self, inputs, *args, **kwargs):
        if self._from_config and isinstance(inputs, keras.KerasTensor):
            if not self._tie_to_upstream_encoder(inputs) and self._live_copy:
                # clone_model's path: left alone, the copy would decode
                # with the original model's kernel.
                raise ValueError(
                    f"TiedDense {self.name!r} was copied with its live encoder "
                    f"{self._tied_to.name!r} (keras.models.clone_model or "
                    f"from_config) and called where no layer named "
                    f"{self._tied_to.name!r} is upstream of its input, so it "
                    "would stay tied to the original model; clone a model in "
                    "which the decoder is called on its encoder's output, or "
                    "build TiedDense(encoder) in code"
                )
        return super().__call__(inputs, *args, **kwargs)

    def _tie_to_upstream_encoder(self, tensor):
        """Tie a copy to the layer named like its encoder upstream of ``tensor``.

        Reads the functional graph through ``_keras_history`` and
        ``_inbound_nodes``, the attributes Keras itself builds graphs from;
        nested models on the way are searched layer by layer.
        """
        name = self._tied_to.name
        seen, stack = set(), [tensor]
        while stack:
            history = getattr(stack.pop(), "_keras_history", None)
            if history is None or id(history[0]) in seen:
                continue
            operation, node_index = history[0], history[1]
            seen.add(id(operation))
            for layer in _with_nested_layers(operation):
                if isinstance(layer, keras.layers.Dense) and layer.name == name:
                    object.__setattr__(self, "_tied_to", layer)
                    self._placeholder_encoder = False
                    return True
            stack.extend(operation._inbound_nodes[node_index].input_tensors)
        return False

    def _check_tied(self):
        if self._placeholder_encoder:
            raise ValueError(
                f"TiedDense {self.name!r} holds a copy of its encoder "
                f"{self._tied_to.name!r} rebuilt from a config, not the encoder: "
                "call it on the encoder's output in a functional model, load it "
                "from a .keras file, or build TiedDense(encoder) in code (encoder "
                "and decoder in separate nested sub-models cannot be rebuilt by "
                "Keras 3)"
            )

    def load_own_variables(self, store):
        super().load_own_variables(store)
        if not self._placeholder_encoder:
            return
        if self._encoder_shared_in_file and not self._tied_to._inbound_nodes:
            # The file's encoder lives in another nested sub-model, which
            # Keras rebuilt as a separate layer: the tie is lost.
            raise ValueError(
                f"TiedDense {self.name!r} and its encoder {self._tied_to.name!r} "
                "were saved in separate nested sub-models, which Keras 3 cannot "
                "reload as one layer; keep them in one functional model (use "
                "sub-models as views), or rebuild the model in code and load "
                "its weights"
            )
        # Otherwise the encoder is in use in this model, or its weights are
        # stored with this layer and load next.
        self._placeholder_encoder = False

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
        self._check_tied()
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
        serialized = config["tied_to"]
        if isinstance(serialized, dict):
            # Inside .keras loading this returns the model's own encoder
            # instance (shared_object_id); elsewhere it builds a copy.
            config["tied_to"] = keras.saving.deserialize_keras_object(serialized)
        layer = cls(**config)
        layer._from_config = True
        if isinstance(serialized, dict):
            layer._placeholder_encoder = not layer._tied_to._inbound_nodes
            layer._encoder_shared_in_file = "shared_object_id" in serialized
        else:
            layer._live_copy = True
        return layer
