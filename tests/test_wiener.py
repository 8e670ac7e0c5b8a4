"""Multichannel Wiener filtering (``mwf=True``, Spleeter's ``--mwf``) against
norbert, the NumPy library Spleeter calls for it, on the whole song."""
import norbert
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from keras_sep.models import UNetSeparator, WaveformSeparator
from keras_sep.ops import wiener
from keras_sep.separation import Separator

RATE = 8000


def snr_db(reference, estimate):
    """``10·log10(Σ|ref|² / Σ|ref−est|²)`` (complex spectra too)."""
    reference = np.asarray(reference, np.complex128)
    error = reference - np.asarray(estimate, np.complex128)
    return 10 * np.log10(np.sum(np.abs(reference) ** 2) / np.sum(np.abs(error) ** 2))


def _random_case(frames=40, bins=16, channels=2, sources=2, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((frames, bins, channels)) + 1j * rng.standard_normal((frames, bins, channels))) * 30
    v = np.abs(rng.standard_normal((frames, bins, channels, sources))) * 20
    return x.astype(np.complex64), v.astype(np.float32)


def _ours(x, v, chunk_frames, overlap):
    """Our two passes over chunks of ``chunk_frames`` frames sharing
    ``overlap`` frames, cross-faded, in norbert's layout."""
    frames = len(x)
    hop = chunk_frames - overlap
    starts = list(range(0, frames - overlap, hop))
    weights = np.zeros((len(starts), chunk_frames), np.float32)
    count = np.zeros(frames)
    for row, start in enumerate(starts):
        count[start : start + chunk_frames] += 1
    spectra, estimates = [], []
    for row, start in enumerate(starts):
        stop = min(start + chunk_frames, frames)
        weights[row, : stop - start] = 1 / count[start:stop]
        pad = chunk_frames - (stop - start)
        spectra.append(np.pad(x[start:stop], [(0, pad), (0, 0), (0, 0)]).transpose(2, 0, 1))
        estimates.append(np.pad(v[start:stop], [(0, pad), (0, 0), (0, 0), (0, 0)]).transpose(3, 2, 0, 1))
    spectra, estimates = np.stack(spectra), np.stack(estimates, axis=1)
    sums = wiener.statistics(estimates, spectra, weights)
    spatial, scale = wiener.spatial_covariances(*sums)
    y = wiener.filter_spectra(estimates, spectra, spatial, scale).numpy()  # (J, B, C, T, F)
    out = np.zeros(x.shape + (v.shape[-1],), np.complex64)
    for row, start in enumerate(starts):
        stop = min(start + chunk_frames, frames)
        part = y[:, row].transpose(2, 3, 1, 0)[: stop - start]
        out[start:stop] += part * weights[row, : stop - start, None, None, None]
    return out


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_one_chunk_equals_norbert(channels):
    x, v = _random_case(channels=channels, seed=channels)
    reference = norbert.wiener(v.copy(), x.copy())
    ours = _ours(x, v, len(x), 0)
    assert snr_db(reference, ours) > 100


@pytest.mark.parametrize("sources", [4, 5])
def test_four_and_five_sources_equal_norbert(sources):
    """Spleeter's 4- and 5-stem --mwf: one chunk and cross-faded chunks."""
    x, v = _random_case(frames=50, sources=sources, seed=10 + sources)
    reference = norbert.wiener(v.copy(), x.copy())
    assert snr_db(reference, _ours(x, v, len(x), 0)) > 100
    assert snr_db(reference, _ours(x, v, 24, 6)) > 100


def test_chunked_statistics_equal_the_whole_song():
    """Chunks that share frames (weights summing to one) fit the same model
    as norbert on the whole song; the filtered spectra agree frame by frame
    (each frame's estimate depends on it and the song-wide R only)."""
    x, v = _random_case(frames=70, seed=3)
    reference = norbert.wiener(v.copy(), x.copy())
    assert snr_db(reference, _ours(x, v, 24, 0)) > 100
    assert snr_db(reference, _ours(x, v, 24, 6)) > 100


def test_loud_songs_are_scaled_as_in_norbert():
    x, v = _random_case(seed=4)
    x, v = x * 1000, v * 1000  # the regularisation's weight depends on the peak
    reference = norbert.wiener(v.copy(), x.copy())
    assert snr_db(reference, _ours(x, v, 16, 0)) > 100


def tiny_model(overlap=8, mask_extension="zeros"):
    import keras

    keras.utils.set_random_seed(11)
    net = UNetSeparator(filters=(4, 8), bins=32, frames=32, name="tiny_unet")
    return WaveformSeparator(
        net, sample_rate=RATE, frame_length=128, frame_step=32, overlap_frames=overlap, mask_extension=mask_extension
    )


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _noise(n, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, 2)).astype(np.float32)


def whole_song_mwf(model, wave):
    """Spleeter's --mwf on the whole song: its STFT (frame_length zeros in
    front, padded at the end), the network on its 512-frame (here 32-frame)
    chunks, norbert.wiener on all frames at once, inverse STFT."""
    length, step = model.frame_length, model.frame_step
    net = model.spectrogram_model
    padded = np.concatenate([np.zeros((length, 2), np.float32), wave])
    window = tf.signal.hann_window(length, periodic=True)
    x = tf.signal.stft(padded.T, length, step, window_fn=lambda n, dtype: window, pad_end=True).numpy()
    frames, total_bins = x.shape[1], x.shape[2]
    chunks = -(-frames // model.chunk_frames)
    rows = chunks * model.chunk_frames
    magnitude = np.abs(np.pad(x, [(0, 0), (0, rows - frames), (0, 0)])[..., : net.bins]).transpose(1, 2, 0)
    estimates = net(magnitude.reshape(chunks, model.chunk_frames, net.bins, 2), training=False)
    v = np.stack([np.asarray(estimates[name]).reshape(rows, net.bins, 2)[:frames] for name in model.instruments], -1)
    v = np.pad(v, [(0, 0), (0, total_bins - net.bins), (0, 0), (0, 0)])
    y = norbert.wiener(v, x.transpose(1, 2, 0).copy())  # (frames, bins, channels, sources)
    stems = {}
    for j, name in enumerate(model.instruments):
        time_frames = np.fft.irfft(y[..., j].transpose(2, 0, 1), n=length) * window.numpy()
        out = np.zeros((2, (frames - 1) * step + length))
        for t in range(frames):
            out[:, t * step : t * step + length] += time_frames[:, t]
        stems[name] = (out.T * model.output_scale)[length : length + len(wave)]
    return stems


@pytest.mark.parametrize("length", [700, 5000])
@pytest.mark.parametrize("fast", [True, False])
def test_spleeter_chunking_equals_norbert_on_the_whole_song(model, length, fast):
    wave = _noise(length, seed=length)
    ours = Separator(model, chunking="spleeter", mwf=True, batch_size=2, fast=fast).separate(wave, sample_rate=RATE)
    reference = whole_song_mwf(model, wave)
    for name in model.instruments:
        assert ours[name].shape == (length, 2)
        assert snr_db(reference[name], ours[name]) > 80


def test_mwf_differs_from_ratio_masks_and_keeps_the_mixture():
    """With the "average" extension the stems sum to the mixture, with ratio
    masks and with Wiener filtering (its gains sum to the identity up to the
    regularisation), in the default overlapping chunks."""
    model = tiny_model(mask_extension="average")
    wave = _noise(6000, seed=2)
    filtered = Separator(model, mwf=True).separate(wave, sample_rate=RATE)
    masked = Separator(model).separate(wave, sample_rate=RATE)
    np.testing.assert_allclose(sum(filtered.values()), wave, atol=1e-3)
    assert snr_db(masked["vocals"], filtered["vocals"]) < 40


def test_file_equals_array_and_batches_agree(model, tmp_path):
    wave = _noise(9001, seed=6)
    path = tmp_path / "song.wav"
    sf.write(path, wave, RATE, subtype="FLOAT")
    one = Separator(model, mwf=True, batch_size=1)
    targets = one.separate_to_file(path, tmp_path / "out")
    three = Separator(model, mwf=True, batch_size=3).separate(str(path))
    for name in model.instruments:
        written = sf.read(targets[name], dtype="float32")[0]
        np.testing.assert_allclose(written, three[name], atol=1e-5)


def test_resampled_input(model):
    wave = _noise(4000, seed=8)
    ours = Separator(model, chunking="spleeter", mwf=True).separate(wave, sample_rate=16000)
    for name in model.instruments:
        assert abs(len(ours[name]) - len(wave)) <= 1


def test_stream_needs_reiterable_blocks(model):
    sep = Separator(model, mwf=True)
    blocks = iter([_noise(500)])
    with pytest.raises(TypeError, match="reads the input twice"):
        next(sep.stream(blocks, RATE))
    pieces = list(sep.stream([_noise(500), _noise(300, seed=1)], RATE))
    whole = sep.separate(np.concatenate([_noise(500), _noise(300, seed=1)]), sample_rate=RATE)
    for name in model.instruments:
        np.testing.assert_allclose(np.concatenate([p[name] for p in pieces]), whole[name], atol=1e-6)


@pytest.mark.slow
def test_spleeter_weights_equal_norbert_on_the_whole_song():
    """Deezer's weights, Spleeter's example: our streamed --mwf against the
    whole-song reference (our network, norbert, Spleeter's signal path)."""
    from conftest import spleeter_reference
    from keras_sep import pretrained

    model = pretrained.load_model("spleeter:2stems")
    excerpt = spleeter_reference()["mixture"]  # one second of Spleeter's example
    wave = np.tile(excerpt, (14, 1))  # 14 s: two of Spleeter's 11.9 s chunks
    ours = Separator(model, chunking="spleeter", mwf=True).separate(wave)
    reference = whole_song_mwf(model, wave)
    for name in model.instruments:
        assert snr_db(reference[name], ours[name]) > 60
