"""Wiener filtering with EM iterations (keras_sep.ops.wiener_em) against
norbert's ``wiener()`` / ``expectation_maximization()`` computed in float64."""
import norbert
import numpy as np
import pytest
import tensorflow as tf

from keras_sep.ops import stft as stft_ops
from keras_sep.ops import wiener_em

EPS = float(np.finfo(np.float32).eps)


def snr_db(reference, estimate):
    reference = np.asarray(reference, np.complex128)
    error = reference - np.asarray(estimate, np.complex128)
    return 10 * np.log10(np.sum(np.abs(reference) ** 2) / np.sum(np.abs(error) ** 2))


def _random_case(frames, bins, channels, sources, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((frames, bins, channels)) + 1j * rng.standard_normal((frames, bins, channels))) * 30
    v = np.abs(rng.standard_normal((frames, bins, channels, sources))) * 20
    return x.astype(np.complex64), v.astype(np.float32)


def _realistic_case(channels, sources, seed, samples=8192):
    """STFTs of panned tones and coloured noise: the mixture and the true
    source magnitudes, as a network would estimate them."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 8000
    waves = []
    for j in range(sources):
        tone = np.sin(2 * np.pi * (110 * (j + 1)) * t * (1 + 0.02 * np.sin(2 * np.pi * t)))
        noise = np.convolve(rng.standard_normal(samples), np.hanning(8 + 8 * j), mode="same") * 0.1
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + j) * t) ** 2
        mono = (tone * envelope + noise) * (0.3 + 0.2 * j)
        pan = rng.uniform(0.2, 1.0, size=channels)
        waves.append(mono[:, None] * pan[None, :])
    waves = np.stack(waves).astype(np.float32)  # (sources, samples, channels)
    spectra = np.asarray(stft_ops.stft(waves, 512, 128, center=True, pad_mode="reflect"))
    x = spectra.sum(axis=0)
    v = np.abs(spectra).transpose(1, 2, 3, 0)  # (frames, bins, channels, sources)
    return x.astype(np.complex64), v.astype(np.float32)


def _norbert(v, x, iterations, softmask=True, eps=EPS):
    return norbert.wiener(v.astype(np.float64), x.astype(np.complex128), iterations, softmask, eps)


def _ours(v, x, **kwargs):
    return wiener_em.wiener(v[None], x[None], **kwargs).numpy()[0]


@pytest.mark.parametrize("sources", [1, 2, 4])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_random_inputs_equal_norbert(sources, channels, iterations):
    x, v = _random_case(30, 12, channels, sources, seed=100 * sources + 10 * channels + iterations)
    reference = _norbert(v, x, iterations)
    ours = _ours(v, x, iterations=iterations)
    assert ours.shape == reference.shape
    assert snr_db(reference, ours) > 60


@pytest.mark.parametrize("sources", [1, 2, 4])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_realistic_spectra_equal_norbert(sources, channels, iterations):
    """Panned sources make nearly singular mixture covariances: float64
    arithmetic (norbert's) holds 60 dB, float32 (Open-Unmix's) 40 dB."""
    x, v = _realistic_case(channels, sources, seed=sources + channels)
    reference = _norbert(v, x, iterations)
    ours = _ours(v, x, iterations=iterations, dtype=tf.complex128)
    assert ours.dtype == np.complex64
    assert snr_db(reference, ours) > 60
    # Every source on its own too, not only the sum of errors.
    for j in range(sources):
        assert snr_db(reference[..., j], ours[..., j]) > 60
    assert snr_db(reference, _ours(v, x, iterations=iterations)) > 40


@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_mixture_phase_start_and_epsilon_equal_norbert(iterations):
    """``softmask=False`` (Open-Unmix's default) and Open-Unmix's ε."""
    x, v = _realistic_case(2, 4, seed=7)
    x[3, 5] = 0  # a silent bin takes phase 0, as norbert's np.angle
    reference = _norbert(v, x, iterations, softmask=False, eps=1e-10)
    ours = _ours(v, x, iterations=iterations, softmask=False, epsilon=1e-10)
    assert snr_db(reference, ours) > 60


def test_mono_magnitudes_with_a_stereo_mixture():
    """Magnitudes with one channel broadcast over the mixture's channels."""
    x, v = _random_case(20, 10, 2, 3, seed=5)
    v = v[:, :, :1]
    reference = _norbert(v, x, 1)
    assert snr_db(reference, _ours(v, x, iterations=1)) > 60


@pytest.mark.parametrize("iterations", [0, 1, 2])
def test_residual_is_an_extra_source_before_em(iterations):
    x, v = _realistic_case(2, 2, seed=9)
    y = norbert.softmask(v.astype(np.float64), x.astype(np.complex128), eps=EPS)
    y = np.concatenate([y, x[..., None] - y.sum(axis=-1, keepdims=True)], axis=-1)
    if iterations:
        scale = max(1.0, np.abs(x).max() / 10.0)
        y = norbert.expectation_maximization(y / scale, x.astype(np.complex128) / scale, iterations, eps=EPS)[0]
        y = y * scale
    ours = _ours(v, x, iterations=iterations, residual=True, dtype=tf.complex128)
    assert ours.shape[-1] == 3
    assert snr_db(y, ours) > 60
    assert snr_db(y, _ours(v, x, iterations=iterations, residual=True)) > 40


def test_batch_items_are_fitted_on_their_own():
    """Each batch item has its own covariances and scale."""
    x1, v1 = _random_case(20, 8, 2, 2, seed=1)
    x2, v2 = _random_case(20, 8, 2, 2, seed=2)
    x2 *= 50
    ours = wiener_em.wiener(np.stack([v1, v2]), np.stack([x1, x2]), iterations=2).numpy()
    assert snr_db(_norbert(v1, x1, 2), ours[0]) > 60
    assert snr_db(_norbert(v2, x2, 2), ours[1]) > 60


@pytest.mark.parametrize("window", [7, 30, None])
def test_windows_are_filtered_independently(window):
    """Open-Unmix's ``wiener_win_len``: a model per window of frames, the
    last window shorter."""
    x, v = _random_case(30, 8, 2, 3, seed=11)
    step = window or len(x)
    reference = np.concatenate(
        [_norbert(v[s : s + step], x[s : s + step], 1) for s in range(0, len(x), step)]
    )
    ours = wiener_em.windowed_wiener(v[None], x[None], window, iterations=1).numpy()[0]
    assert snr_db(reference, ours) > 60


def test_a_chunk_is_cut_into_the_song_windows():
    """``start``: the excerpt begins ``start`` frames into a window."""
    x, v = _random_case(30, 8, 2, 3, seed=12)
    song = wiener_em.windowed_wiener(v[None], x[None], 10, iterations=1).numpy()[0]
    # Frames 13..29 with the song's windows [10, 20) and [20, 30): only
    # the first is cut (frames 10..12 are missing), the second is whole.
    part = wiener_em.windowed_wiener(v[None, 13:], x[None, 13:], 10, start=3, iterations=1).numpy()[0]
    np.testing.assert_allclose(part[7:], song[20:], atol=1e-5)
    assert snr_db(song[13:20], part[:7]) < 60
    reference = np.concatenate([_norbert(v[13:20], x[13:20], 1), _norbert(v[20:], x[20:], 1)])
    assert snr_db(reference, part) > 60


def test_dynamic_shapes_in_a_graph():
    fn = tf.function(
        lambda v, x: wiener_em.windowed_wiener(v, x, 4, iterations=1, residual=True),
        input_signature=[
            tf.TensorSpec([None, None, None, 2, 2], tf.float32),
            tf.TensorSpec([None, None, None, 2], tf.complex64),
        ],
    )
    x, v = _random_case(10, 5, 2, 2, seed=3)
    y = fn(v[None], x[None]).numpy()
    assert y.shape == (1, 10, 5, 2, 3)
    eager = wiener_em.windowed_wiener(v[None], x[None], 4, iterations=1, residual=True).numpy()
    assert snr_db(eager, y) > 100


def test_bad_arguments_are_refused():
    x, v = _random_case(4, 3, 2, 2, seed=0)
    with pytest.raises(ValueError, match="-1"):
        wiener_em.wiener(v[None], x[None], iterations=-1)
    with pytest.raises(ValueError, match="0"):
        wiener_em.windowed_wiener(v[None], x[None], 0)
