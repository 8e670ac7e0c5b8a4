"""The element-wise mono and stereo EM steps of keras_sep.ops.wiener_em
against its matrix form, and the XLA-compiled and windowed filters against
the plain one."""
import numpy as np
import pytest
import tensorflow as tf

from keras_sep.ops import wiener_em


def snr_db(reference, estimate):
    reference = np.asarray(reference, np.complex128)
    error = reference - np.asarray(estimate, np.complex128)
    with np.errstate(divide="ignore"):  # inf where they are equal
        return 10 * np.log10(np.sum(np.abs(reference) ** 2) / np.sum(np.abs(error) ** 2))


def _sources(channels, seed, singular=False, shape=(2, 25, 7), sources=4):
    """Source spectra ``(batch, frames, bins, channels, sources)`` and their
    mixture. ``singular``: source 0 is panned to one direction (a rank-one
    ``R_0``) and 10⁴ times louder than the others, so that the mixture
    covariance is nearly singular."""
    rng = np.random.default_rng(seed)
    full = shape + (channels, sources)
    y = (rng.standard_normal(full) + 1j * rng.standard_normal(full)) * 5
    if singular:
        pan = np.array([1.0, 0.5j])[:channels]
        y[..., 0] = 30 * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape))[..., None] * pan
        y[..., 1:] *= 3e-3
    x = y.sum(axis=-1) + 0.01 * rng.standard_normal(full[:-1])
    return y, x


def _both(y, x, iterations, dtype, epsilon=1e-10):
    y, x = tf.constant(y, dtype), tf.constant(x, dtype)
    fast = wiener_em.expectation_maximization(y, x, iterations, epsilon, dtype)
    return fast.numpy(), wiener_em._matrix_steps(y, x, iterations, epsilon).numpy()


@pytest.mark.parametrize("iterations", [1, 2])
@pytest.mark.parametrize("channels", [1, 2])
def test_element_wise_steps_equal_the_matrix_form(channels, iterations):
    y, x = _sources(channels, seed=channels + iterations)
    fast, matrix = _both(y, x, iterations, tf.complex64)
    assert fast.dtype == np.complex64
    assert snr_db(matrix, fast) > 120
    fast, matrix = _both(y, x, iterations, tf.complex128)
    assert fast.dtype == np.complex128
    assert snr_db(matrix, fast) > 250


@pytest.mark.parametrize("channels", [1, 2])
def test_element_wise_steps_near_a_singular_mixture_covariance(channels):
    y, x = _sources(channels, seed=4, singular=True)
    fast, matrix = _both(y, x, 2, tf.complex128)
    assert snr_db(matrix, fast) > 150
    # In complex64 the stereo inverse loses most digits (see
    # expectation_maximization): the element-wise steps lose no more.
    exact = matrix if channels == 1 else _both(y, x, 1, tf.complex128)[1]
    fast, matrix = _both(y, x, 1 if channels == 2 else 2, tf.complex64)
    assert snr_db(exact, fast) > snr_db(exact, matrix) - 1


def test_other_channel_counts_take_the_matrix_form():
    y, x = _sources(3, seed=5)
    fast, matrix = _both(y, x, 1, tf.complex64)
    np.testing.assert_array_equal(fast, matrix)


def _magnitudes(frames, channels=2, sources=3, batch=2, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((batch, frames, 9, channels)) + 1j * rng.standard_normal((batch, frames, 9, channels)))
    v = np.abs(rng.standard_normal((batch, frames, 9, channels, sources))) * 0.8
    return v.astype(np.float32), (30 * x).astype(np.complex64)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("softmask, residual", [(True, False), (False, True)])
def test_xla_filter_equals_the_plain_one(channels, softmask, residual):
    v, x = _magnitudes(23, channels)
    kwargs = dict(iterations=2, softmask=softmask, residual=residual, epsilon=1e-10)
    plain = wiener_em.windowed_wiener(v, x, 10, 4, **kwargs).numpy()
    compiled = wiener_em.windowed_wiener(v, x, 10, 4, jit_compile=True, **kwargs).numpy()
    assert compiled.shape == plain.shape == x.shape + (3 + residual,)
    assert snr_db(plain, compiled) > 110
    whole = wiener_em.windowed_wiener(v, x, None, jit_compile=True, **kwargs).numpy()
    assert snr_db(wiener_em.wiener(v, x, **kwargs).numpy(), whole) > 110


@pytest.mark.parametrize("channels", [2, 3])
def test_xla_filter_in_complex128(channels):
    v, x = _magnitudes(23, channels)
    kwargs = dict(iterations=1, dtype=tf.complex128)
    plain = wiener_em.windowed_wiener(v, x, 10, 4, **kwargs).numpy()
    compiled = wiener_em.windowed_wiener(v, x, 10, 4, jit_compile=True, **kwargs).numpy()
    assert compiled.dtype == np.complex64
    assert snr_db(plain, compiled) > 130


@pytest.mark.parametrize("jit_compile", [False, True])
def test_each_batch_item_is_cut_into_its_own_windows(jit_compile):
    v, x = _magnitudes(17, batch=3)
    ours = wiener_em.windowed_wiener(v, x, 6, 2, jit_compile=jit_compile, iterations=1).numpy()
    for item in range(3):
        # Windows [0, 4), [4, 10), [10, 16), [16, 17) of the excerpt.
        reference = np.concatenate([
            wiener_em.wiener(v[item : item + 1, a:b], x[item : item + 1, a:b], iterations=1).numpy()[0]
            for a, b in [(0, 4), (4, 10), (10, 16), (16, 17)]
        ])
        assert snr_db(reference, ours[item]) > 110


def test_xla_filter_in_a_graph_with_dynamic_shapes():
    fn = tf.function(
        lambda v, x, start: wiener_em.windowed_wiener(v, x, 8, start, jit_compile=True, iterations=1),
        input_signature=[
            tf.TensorSpec([None, None, None, 2, 3], tf.float32),
            tf.TensorSpec([None, None, None, 2], tf.complex64),
            tf.TensorSpec([], tf.int32),
        ],
    )
    for frames, start in [(19, 3), (5, 7)]:
        v, x = _magnitudes(frames, seed=frames)
        y = fn(v, x, start)
        assert y.shape == x.shape + (3,)
        assert snr_db(wiener_em.windowed_wiener(v, x, 8, start, iterations=1), y) > 110
