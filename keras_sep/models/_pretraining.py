"""Greedy layer-wise pretraining of a DenseAutoencoder (private).

Hinton & Salakhutdinov (2006) train the encoder one layer at a time, each
as a restricted Boltzmann machine on the hidden means of the layer below,
then unroll the stack into an autoencoder (decoder kernels = encoder
kernelsᵀ) and fine-tune it end to end. Layer ``i`` of the stack *is* the
autoencoder's encoder ``Dense`` (kernel ``W``, hidden bias ``c``) with the
bias of its mirror decoder layer as the visible bias ``b``, so the RBM
trains the model's own variables; an untied decoder gets ``Wᵀ`` copied in
afterwards. ``method="autoencoder"`` trains each layer as a shallow tied
autoencoder instead (Bengio et al., 2007), which works for any activation.
"""
import logging

import keras
import numpy as np
import tensorflow as tf

from keras_sep.ops import rbm as rbm_ops

logger = logging.getLogger(__name__)

METHODS = ("rbm", "autoencoder")
# Hinton & Salakhutdinov's settings: learning rates of layers with logistic
# and with Gaussian (linear) hidden units, momentum 0.5 for the first epochs
# then 0.9, and an L2 weight cost on the kernels.
RBM_LEARNING_RATES = {"bernoulli": 0.1, "gaussian": 0.001}
RBM_MOMENTUM = ((5, 0.5), (None, 0.9))
RBM_WEIGHT_COST = 2e-4
AUTOENCODER_LEARNING_RATE = 1e-3


def _is(activation, function):
    return keras.activations.get(activation) is function


def visible_batches(x, batch_size, seed):
    """``(batch, features)`` float32 batches of the inputs ``x``.

    ``x`` is an array, shuffled with ``seed`` every epoch, or a
    ``tf.data.Dataset`` of inputs or of ``(inputs, targets[, weights])``
    tuples, batched or not, taken in its own order.
    """
    if isinstance(x, tf.data.Dataset):
        dataset, spec = x, x.element_spec
        if isinstance(spec, tuple):
            dataset, spec = dataset.map(lambda *element: element[0]), spec[0]
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank not in (1, 2):
            raise ValueError(
                f"pretrain needs a dataset of feature vectors or batches of them, got {spec!r}"
            )
        if spec.shape.rank == 1:
            dataset = dataset.batch(batch_size)
        return dataset.map(lambda v: tf.cast(v, tf.float32))
    array = np.asarray(x, dtype="float32")
    if array.ndim != 2:
        raise ValueError(f"pretrain needs x of shape (examples, features), got {array.shape}")
    return (
        tf.data.Dataset.from_tensor_slices(array)
        .shuffle(len(array), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
    )


def _hidden_units(layer, method):
    """``"bernoulli"`` or ``"gaussian"`` for an encoder layer's RBM."""
    if _is(layer.activation, keras.activations.sigmoid):
        return "bernoulli"
    if _is(layer.activation, keras.activations.linear):
        return "gaussian"
    if method == "rbm":
        raise ValueError(
            f"method='rbm' needs logistic (sigmoid) or linear units, but layer "
            f"{layer.name!r} has activation {keras.activations.serialize(layer.activation)!r}; "
            "use method='autoencoder'"
        )
    return None


def _propagate(layers):
    def apply(batch):
        for layer in layers:
            batch = layer(batch, training=False)
        return batch

    return apply


def _reset(kernel, biases, seed, scale):
    """Seeded start: kernel ``N(0, scale²)`` (0.1 in the paper), zero biases."""
    kernel.assign(keras.random.normal(kernel.shape, stddev=scale, seed=seed))
    for bias in biases:
        bias.assign(tf.zeros(bias.shape, bias.dtype))


def _rbm_layer(dataset, kernel, visible_bias, hidden_bias, hidden, epochs, learning_rate,
               k, seed, progbar):
    weight_cost = RBM_WEIGHT_COST if hidden == "bernoulli" else 0.0
    params = (kernel, visible_bias, hidden_bias)
    velocities = [tf.Variable(tf.zeros(p.shape, p.dtype), trainable=False) for p in params]
    momentum = tf.Variable(0.0, trainable=False)
    counter = tf.Variable(0, dtype=tf.int64, trainable=False)

    @tf.function
    def step(batch):
        counter.assign_add(1)
        d_kernel, d_visible, d_hidden, error = rbm_ops.contrastive_divergence(
            batch, kernel, visible_bias, hidden_bias, k=k, hidden=hidden,
            seed=tf.stack([tf.constant(seed, tf.int64), counter]),
        )
        d_kernel -= weight_cost * kernel
        for param, velocity, direction in zip(params, velocities, (d_kernel, d_visible, d_hidden)):
            velocity.assign(momentum * velocity + learning_rate * direction)
            param.assign_add(velocity)
        return error

    return _epochs(dataset, step, epochs, progbar, momentum)


def _autoencoder_layer(dataset, encoder, kernel, visible_bias, hidden_bias, output_activation,
                       epochs, learning_rate, progbar):
    optimizer = keras.optimizers.Adam(learning_rate)
    params = [kernel, visible_bias, hidden_bias]

    @tf.function
    def step(batch):
        with tf.GradientTape() as tape:
            codes = encoder.activation(tf.matmul(batch, kernel) + hidden_bias)
            logits = tf.matmul(codes, kernel, transpose_b=True) + visible_bias
            error = tf.reduce_mean(tf.square(batch - output_activation(logits)))
        optimizer.apply_gradients(zip(tape.gradient(error, params), params))
        return error

    return _epochs(dataset, step, epochs, progbar)


def _epochs(dataset, step, epochs, progbar, momentum=None):
    errors = []
    for epoch in range(epochs):
        if momentum is not None:
            momentum.assign(next(m for until, m in RBM_MOMENTUM if until is None or epoch < until))
        total, batches = 0.0, 0
        for batch in dataset:
            total += float(step(batch))
            batches += 1
        errors.append(total / max(batches, 1))
        progbar.update(epoch + 1, [("reconstruction_error", errors[-1])])
    return errors


def pretrain_layerwise(model, x, epochs=50, method="rbm", batch_size=100, learning_rate=None,
                       k=1, seed=0, verbose=1):
    """Train ``model``'s encoder layer by layer; see ``DenseAutoencoder.pretrain``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    epochs, batch_size, seed = int(epochs), int(batch_size), int(seed)
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {epochs!r}, {batch_size!r}")
    encoders, mirrors = model.encoder_layers, model.decoder_layers[::-1]
    if method == "rbm" and not _is(mirrors[0].activation, keras.activations.sigmoid):
        raise ValueError(
            "method='rbm' needs output_activation='sigmoid' (Bernoulli visible units "
            f"for data in [0, 1]), got {model.output_activation!r}; use method='autoencoder'"
        )
    units = [_hidden_units(layer, method) for layer in encoders]
    data = visible_batches(x, batch_size, seed)
    history = {}
    for i, (encoder, mirror) in enumerate(zip(encoders, mirrors)):
        kernel, hidden_bias, visible_bias = encoder.kernel, encoder.bias, mirror.bias
        layer_seed = seed * 1009 + i  # a different, reproducible stream per layer
        name = f"{encoder.name} ({kernel.shape[0]}→{kernel.shape[1]}, {method}"
        name += f", {units[i]} hidden)" if method == "rbm" else ")"
        if verbose:
            print(f"Pretraining layer {i + 1}/{len(encoders)}: {name}")
        progbar = keras.utils.Progbar(epochs, verbose=verbose, unit_name="epoch",
                                      stateful_metrics=["reconstruction_error"])
        dataset = data.map(_propagate(encoders[:i])).prefetch(tf.data.AUTOTUNE)
        if method == "rbm":
            _reset(kernel, (hidden_bias, visible_bias), layer_seed, 0.1)
            # A given rate is for logistic layers; Gaussian ones keep the paper's ratio.
            rate = RBM_LEARNING_RATES[units[i]] / RBM_LEARNING_RATES["bernoulli"]
            rate *= RBM_LEARNING_RATES["bernoulli"] if learning_rate is None else learning_rate
            errors = _rbm_layer(dataset, kernel, visible_bias, hidden_bias, units[i], epochs,
                                rate, k, layer_seed, progbar)
        else:
            initializer = keras.initializers.GlorotUniform(seed=layer_seed)
            kernel.assign(initializer(kernel.shape))
            hidden_bias.assign(tf.zeros_like(hidden_bias))
            visible_bias.assign(tf.zeros_like(visible_bias))
            rate = AUTOENCODER_LEARNING_RATE if learning_rate is None else learning_rate
            errors = _autoencoder_layer(dataset, encoder, kernel, visible_bias, hidden_bias,
                                        mirror.activation, epochs, rate, progbar)
        if getattr(mirror, "tied_to", None) is not encoder:
            mirror.kernel.assign(tf.transpose(kernel))
        history[encoder.name] = errors
        logger.info("pretrained %s: reconstruction error %s", name,
                    f"{errors[-1]:.5f}" if errors else "n/a")
    return history
