"""RBM math (keras_sep.ops.rbm) against numpy, and layer-wise pretraining."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sep.models import DenseAutoencoder, deep_autoencoder
from keras_sep.ops import rbm


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def rbm_params(visible=6, hidden=4, seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.random((5, visible)),
        rng.normal(0.0, 0.5, (visible, hidden)),
        rng.normal(0.0, 0.5, visible),
        rng.normal(0.0, 0.5, hidden),
    )


def as32(*arrays):
    return [np.asarray(a, "float32") for a in arrays]


def test_free_energy_bernoulli_matches_brute_force_sum_over_hidden_states():
    v, w, b, c = rbm_params()
    # -log sum_h exp(-E(v, h)) over all 2**4 hidden states.
    states = np.array(list(itertools.product([0, 1], repeat=4)), float)
    energies = -(v @ b)[:, None] - states @ c - np.einsum("bv,vh,sh->bs", v, w, states)
    expected = -np.log(np.exp(-energies).sum(axis=1))
    np.testing.assert_allclose(rbm.free_energy(*as32(v, w, b, c)), expected, rtol=1e-5)


def test_free_energy_gaussian_matches_numpy_and_integral():
    v, w, b, c = rbm_params(hidden=1)
    x = v @ w + c
    expected = -(v @ b) - 0.5 * np.sum(x**2, axis=1) - 0.5 * np.log(2 * np.pi)
    ours = rbm.free_energy(*as32(v, w, b, c), hidden="gaussian")
    np.testing.assert_allclose(ours, expected, rtol=1e-5)
    # The same by integrating exp(-E) over the single real hidden unit.
    h = np.linspace(-12, 12, 24001)
    energy = -(v @ b)[:, None] - h * x + 0.5 * h**2
    integral = np.trapezoid(np.exp(-energy), h, axis=1)
    np.testing.assert_allclose(ours, -np.log(integral), rtol=1e-4)


def numpy_cd(v0, w, b, c, k, hidden, draws):
    """CD-k with the given draws (uniform for Bernoulli, normal for Gaussian)."""
    def mean_h(v):
        a = v @ w + c
        return sigmoid(a) if hidden == "bernoulli" else a

    h0 = mean_h(v0)
    h, v, error = h0, v0, None
    for step in range(k):
        if draws is not None:
            h = (draws[step] < h).astype(float) if hidden == "bernoulli" else h + draws[step]
        v = sigmoid(h @ w.T + b)
        error = np.mean((v0 - v) ** 2) if error is None else error
        h = mean_h(v)
    n = len(v0)
    return (v0.T @ h0 - v.T @ h) / n, (v0 - v).mean(0), (h0 - h).mean(0), error


@pytest.mark.parametrize("hidden", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("k", [1, 3])
def test_contrastive_divergence_matches_numpy_with_the_same_draws(hidden, k):
    v, w, b, c = rbm_params()
    seed = tf.constant([7, 11], tf.int64)
    draw = tf.random.stateless_uniform if hidden == "bernoulli" else tf.random.stateless_normal
    draws = [
        draw((5, 4), tf.random.experimental.stateless_fold_in(seed, i)).numpy().astype(float)
        for i in range(k)
    ]
    expected = numpy_cd(v, w, b, c, k, hidden, draws)
    ours = rbm.contrastive_divergence(*as32(v, w, b, c), k=k, hidden=hidden, seed=seed)
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_mean_field_contrastive_divergence_is_deterministic_and_matches_numpy():
    v, w, b, c = rbm_params(seed=1)
    expected = numpy_cd(v, w, b, c, 2, "bernoulli", None)
    ours = rbm.contrastive_divergence(*as32(v, w, b, c), k=2)
    for got, want in zip(ours, expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_cd_on_the_data_distribution_lowers_the_free_energy_of_the_data():
    # A few hundred CD-1 steps put most of the model's probability (exact,
    # by enumerating the 64 visible states) on the two training patterns.
    rng = np.random.default_rng(2)
    patterns = np.array([[1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0]], "float32")
    v = patterns[rng.integers(0, 2, 64)]
    w = tf.Variable(rng.normal(0, 0.01, (6, 3)).astype("float32"))
    b, c = tf.Variable(tf.zeros(6)), tf.Variable(tf.zeros(3))
    for step in range(500):
        dw, db, dc, _ = rbm.contrastive_divergence(v, w, b, c, seed=[0, step])
        for var, d in ((w, dw), (b, db), (c, dc)):
            var.assign_add(0.1 * d)
    states = np.array(list(itertools.product([0, 1], repeat=6)), "float32")
    is_data = (states[:, None] == patterns).all(-1).any(-1)
    weights = np.exp(-rbm.free_energy(states, w, b, c).numpy().astype(float))
    mass = weights[is_data].sum() / weights.sum()
    assert mass > 0.4, mass  # 2/64 before training


def test_rbm_ops_reject_bad_arguments():
    v, w, b, c = as32(*rbm_params())
    with pytest.raises(ValueError, match="'binary'"):
        rbm.free_energy(v, w, b, c, hidden="binary")
    with pytest.raises(ValueError, match="k must be at least 1, got 0"):
        rbm.contrastive_divergence(v, w, b, c, k=0)


def blobs(n=192, dim=16, seed=0):
    """Noisy copies of 4 binary prototypes, in [0, 1]."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((4, dim)) < 0.5
    x = prototypes[rng.integers(0, 4, n)].astype("float32")
    return np.abs(x - (rng.random(x.shape) < 0.05)).astype("float32")


def small(tied=True, **kwargs):
    return deep_autoencoder(16, hidden=(12,), code_dim=2, tied=tied, **kwargs)


def test_pretrain_is_seeded_and_initialises_tied_and_untied_alike():
    x = blobs()
    tied, again, untied, start = small(), small(), small(tied=False), small()
    for model, seed in ((tied, 1), (again, 1), (untied, 1)):
        model.pretrain(x, epochs=3, seed=seed, verbose=0)
    np.testing.assert_array_equal(tied.reconstruct(x), again.reconstruct(x))
    np.testing.assert_allclose(untied.reconstruct(x), tied.reconstruct(x), atol=1e-6)
    for encoder, decoder in zip(untied.encoder_layers[::-1], untied.decoder_layers):
        np.testing.assert_array_equal(np.asarray(decoder.kernel), np.asarray(encoder.kernel).T)
    # The seed picks each layer's start: the paper's N(0, 0.1²) drawn from
    # its own stream (seed * 1009 + layer), zero biases.
    start.pretrain(x, epochs=0, seed=2, verbose=0)
    for i, (encoder, mirror) in enumerate(zip(start.encoder_layers, start.decoder_layers[::-1])):
        drawn = keras.random.normal(encoder.kernel.shape, stddev=0.1, seed=2 * 1009 + i)
        np.testing.assert_array_equal(np.asarray(encoder.kernel), np.asarray(drawn))
        np.testing.assert_array_equal(np.asarray(encoder.bias), 0.0)
        np.testing.assert_array_equal(np.asarray(mirror.bias), 0.0)


def test_pretrain_reads_tf_data_batched_or_not_and_pairs():
    x = blobs()
    pairs = small()
    pairs.pretrain(tf.data.Dataset.from_tensor_slices((x, x)).batch(32), epochs=2, verbose=0)
    unbatched = small()
    unbatched.pretrain(tf.data.Dataset.from_tensor_slices(x), epochs=2, batch_size=32, verbose=0)
    np.testing.assert_array_equal(pairs.reconstruct(x), unbatched.reconstruct(x))
    with pytest.raises(ValueError, match="feature vectors"):
        small().pretrain(tf.data.Dataset.from_tensor_slices(x.reshape(-1, 4, 4)).batch(8))


def test_rbm_pretraining_learns_and_fine_tuning_improves_it(capsys):
    x = blobs(n=256)
    keras.utils.set_random_seed(0)
    model = small()
    history = model.pretrain(x, epochs=20, verbose=1)
    out = capsys.readouterr().out
    assert "Pretraining layer 2/2: code (12→2, rbm, gaussian hidden)" in out
    assert "reconstruction_error" in out and "20/20" in out
    first = history["encoder_0"]
    assert first[-1] < 0.5 * first[0], first
    # The unrolled stack is only a starting point (as in the paper, the
    # decoder's biases come from the RBMs); fine-tuning makes it a model.
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    model.fit(x, x, epochs=30, batch_size=32, verbose=0)
    mean_error = np.mean((x - x.mean(0)) ** 2)
    assert np.mean((model.reconstruct(x) - x) ** 2) < 0.5 * mean_error


def test_autoencoder_pretraining_works_for_any_activation_and_rbm_refuses():
    x = blobs()
    model = DenseAutoencoder(16, hidden=(12,), code_dim=2, activation="elu", tied=False)
    with pytest.raises(ValueError, match="'elu'"):
        model.pretrain(x, verbose=0)
    history = model.pretrain(x, epochs=30, method="autoencoder", learning_rate=1e-2, verbose=0)
    assert history["encoder_0"][-1] < 0.5 * history["encoder_0"][0]
    with pytest.raises(ValueError, match="'contrastive'"):
        model.pretrain(x, method="contrastive")
    with pytest.raises(ValueError, match="output_activation='sigmoid'"):
        small(output_activation=None).pretrain(x)
