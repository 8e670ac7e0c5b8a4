"""Restricted Boltzmann machines: conditionals, free energy, contrastive divergence.

Pure TensorFlow functions for an RBM with Bernoulli visible units ``v`` (in
``[0, 1]``; probabilities are accepted as data, as Hinton & Salakhutdinov
do) and hidden units ``h`` that are either Bernoulli (logistic) or Gaussian
with unit variance (linear, the code layer of the deep autoencoder). With
``kernel`` ``W`` of shape ``(visible, hidden)``, ``visible_bias`` ``b`` and
``hidden_bias`` ``c``, the energy is

- Bernoulli hidden: ``E(v, h) = −v·b − h·c − vᵀWh``;
- Gaussian hidden:  ``E(v, h) = −v·b − h·c − vᵀWh + ½‖h‖²``,

so that ``p(h | v)`` is ``sigmoid(c + vW)`` or ``N(c + vW, 1)`` and
``p(v | h)`` is ``sigmoid(b + hWᵀ)`` in both cases. The layout matches a
``keras.layers.Dense(hidden)`` encoder (kernel ``(visible, hidden)``, bias
``c``) whose tied decoder holds ``b``, which is how the autoencoders of
``keras_sep.models`` are initialised from a stack of RBMs.

Tensors are ``(batch, visible)`` and ``(batch, hidden)``.
"""
import math

import tensorflow as tf

HIDDEN_UNITS = ("bernoulli", "gaussian")


def _check_hidden(hidden):
    if hidden not in HIDDEN_UNITS:
        raise ValueError(f"hidden must be one of {HIDDEN_UNITS}, got {hidden!r}")


def hidden_mean(visible, kernel, hidden_bias, hidden="bernoulli"):
    """``E[h | v]``: ``sigmoid(c + vW)`` (Bernoulli) or ``c + vW`` (Gaussian)."""
    _check_hidden(hidden)
    activation = tf.matmul(visible, kernel) + hidden_bias
    return tf.sigmoid(activation) if hidden == "bernoulli" else activation


def visible_mean(hidden_values, kernel, visible_bias):
    """``E[v | h] = sigmoid(b + hWᵀ)`` for Bernoulli visible units."""
    return tf.sigmoid(tf.matmul(hidden_values, kernel, transpose_b=True) + visible_bias)


def sample_hidden(mean, hidden, seed):
    """One draw of ``h`` given its mean; ``seed`` a shape-``[2]`` int tensor.

    Bernoulli: ``1[u < mean]`` with ``u = stateless_uniform(shape, seed)``;
    Gaussian: ``mean + stateless_normal(shape, seed)``.
    """
    _check_hidden(hidden)
    if hidden == "bernoulli":
        noise = tf.random.stateless_uniform(tf.shape(mean), seed, dtype=mean.dtype)
        return tf.cast(noise < mean, mean.dtype)
    return mean + tf.random.stateless_normal(tf.shape(mean), seed, dtype=mean.dtype)


def free_energy(visible, kernel, visible_bias, hidden_bias, hidden="bernoulli"):
    """``F(v) = −log Σ_h exp(−E(v, h))`` per example, shape ``(batch,)``.

    Bernoulli hidden: ``−v·b − Σ_j softplus(c_j + (vW)_j)``; Gaussian
    hidden: ``−v·b − ½‖c + vW‖² − (H/2) log 2π``, ``H`` the hidden size.

    Example:

    >>> import numpy as np
    >>> v = np.array([[1.0, 0.0]], "float32")
    >>> w = np.zeros((2, 3), "float32")
    >>> b, c = np.array([0.5, 0.0], "float32"), np.zeros(3, "float32")
    >>> round(float(free_energy(v, w, b, c)[0]), 4)  # -0.5 - 3 log 2
    -2.5794
    """
    _check_hidden(hidden)
    activation = tf.matmul(visible, kernel) + hidden_bias
    visible_term = tf.linalg.matvec(visible, visible_bias)
    if hidden == "bernoulli":
        return -visible_term - tf.reduce_sum(tf.nn.softplus(activation), axis=-1)
    size = tf.cast(tf.shape(activation)[-1], activation.dtype)
    return (
        -visible_term
        - 0.5 * tf.reduce_sum(tf.square(activation), axis=-1)
        - 0.5 * size * math.log(2.0 * math.pi)
    )


def contrastive_divergence(
    visible, kernel, visible_bias, hidden_bias, k=1, hidden="bernoulli", seed=None
):
    """CD-k estimate of the log-likelihood gradient, and the reconstruction error.

    The chain starts at the data ``v0``. Each of the ``k`` steps samples
    ``h`` from ``p(h | v)`` (step ``i`` draws with
    ``tf.random.experimental.stateless_fold_in(seed, i)``, see
    :func:`sample_hidden`) and sets ``v`` to the mean ``E[v | h]``, not a
    sample, as Hinton & Salakhutdinov do. The statistics use hidden means:
    ``ΔW = (v0ᵀ E[h|v0] − vkᵀ E[h|vk]) / batch``, ``Δb = mean(v0 − vk)``,
    ``Δc = mean(E[h|v0] − E[h|vk])``. With ``seed=None`` the chain is
    mean-field (hidden means instead of samples), which is deterministic.

    Args:
        visible: data ``v0``, ``(batch, visible)``.
        kernel: ``W``, ``(visible, hidden)``.
        visible_bias: ``b``, ``(visible,)``.
        hidden_bias: ``c``, ``(hidden,)``.
        k: number of Gibbs steps (>= 1).
        hidden: ``"bernoulli"`` or ``"gaussian"``.
        seed: shape-``[2]`` int tensor for the stateless draws, or None.

    Returns:
        ``(dW, db, dc, error)``: the ascent directions of the
        log-likelihood (add them, times a learning rate, to the
        parameters) and the mean squared error ``mean((v0 − v1)²)`` of the
        first reconstruction.

    Example:

    >>> import numpy as np
    >>> v = np.array([[1.0, 0.0], [1.0, 0.0]], "float32")
    >>> w, b, c = np.zeros((2, 1), "float32"), np.zeros(2, "float32"), np.zeros(1, "float32")
    >>> dw, db, dc, error = contrastive_divergence(v, w, b, c, seed=[1, 2])
    >>> np.round(db.numpy(), 2)  # the data's first unit is on more than the model's
    array([ 0.5, -0.5], dtype=float32)
    """
    _check_hidden(hidden)
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k!r}")
    v0 = tf.convert_to_tensor(visible)
    h0 = hidden_mean(v0, kernel, hidden_bias, hidden)
    h, v, error = h0, v0, None
    for step in range(k):
        if seed is not None:
            step_seed = tf.random.experimental.stateless_fold_in(
                tf.cast(seed, tf.int64), step
            )
            h = sample_hidden(h, hidden, step_seed)
        v = visible_mean(h, kernel, visible_bias)
        if error is None:
            error = tf.reduce_mean(tf.square(v0 - v))
        h = hidden_mean(v, kernel, hidden_bias, hidden)
    batch = tf.cast(tf.shape(v0)[0], v0.dtype)
    d_kernel = (tf.matmul(v0, h0, transpose_a=True) - tf.matmul(v, h, transpose_a=True)) / batch
    d_visible = tf.reduce_mean(v0 - v, axis=0)
    d_hidden = tf.reduce_mean(h0 - h, axis=0)
    return d_kernel, d_visible, d_hidden, error
