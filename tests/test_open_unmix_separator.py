"""OpenUnmixSeparator: openunmix.Separator's signal path against a NumPy
reference (torch.stft/istft semantics, norbert's EM in float64), saving,
mixed precision and the streaming chunk path."""
import keras
import norbert
import numpy as np
import pytest

from keras_sep.models import OpenUnmix, OpenUnmixSeparator
from keras_sep.separation.engine import ChunkStream

N_FFT, HOP = 64, 16
BINS = N_FFT // 2 + 1
TARGETS = ("vocals", "drums", "bass", "other")


def snr_db(reference, estimate):
    reference = np.asarray(reference, np.float64)
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - np.asarray(estimate, np.float64)) ** 2))


def _nets(targets=TARGETS, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    nets = []
    for name in targets:
        net = OpenUnmix(nb_bins=BINS, nb_channels=channels, hidden_size=8, max_bin=20, target=name)
        net.set_weights([rng.normal(scale=0.5, size=w.shape).astype("float32") if w.ndim > 1 or "variance" not in v.path
                         else rng.uniform(0.5, 2.0, size=w.shape).astype("float32")
                         for w, v in zip(net.get_weights(), net.weights)])
        nets.append(net)
    return nets


def _mixture(samples=600, channels=2, seed=1):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 8000
    tones = [np.sin(2 * np.pi * f * t) * (0.3 + 0.2 * k) for k, f in enumerate((220, 540, 1300))]
    wave = sum(tone[:, None] * rng.uniform(0.3, 1.0, channels) for tone in tones)
    return (wave + 0.05 * rng.standard_normal((samples, channels))).astype("float32")


def _torch_stft(wave):
    """torch.stft(center=True, pad_mode="reflect") with a periodic Hann
    window: (frames, bins, channels)."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    padded = np.pad(wave.astype(np.float64), [(N_FFT // 2, N_FFT // 2), (0, 0)], mode="reflect")
    frames = 1 + (len(padded) - N_FFT) // HOP
    chunks = np.stack([padded[t * HOP : t * HOP + N_FFT] for t in range(frames)])
    return np.fft.rfft(chunks * window[None, :, None], axis=1)


def _torch_istft(spec, length):
    """torch.istft(center=True, length=length): window-sum normalised."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    frames = np.fft.irfft(spec, n=N_FFT, axis=1) * window[None, :, None]
    total = (len(spec) - 1) * HOP + N_FFT
    out = np.zeros((total, spec.shape[-1]))
    envelope = np.zeros(total)
    for t, frame in enumerate(frames):
        out[t * HOP : t * HOP + N_FFT] += frame
        envelope[t * HOP : t * HOP + N_FFT] += window**2
    out = out[N_FFT // 2 :] / envelope[N_FFT // 2 :, None]
    return np.pad(out[:length], [(0, max(0, length - len(out))), (0, 0)])


def _reference(nets, wave, niter, residual, window):
    """openunmix.Separator.forward, with norbert's EM for the filter."""
    x = _torch_stft(wave)
    magnitude = np.abs(x).astype(np.float32)[None]
    v = np.stack([np.asarray(net(magnitude))[0] for net in nets], axis=-1).astype(np.float64)
    step = window or len(x)
    parts = []
    for start in range(0, len(x), step):
        xs, vs = x[start : start + step], v[start : start + step]
        y = vs * np.exp(1j * np.angle(xs))[..., None]
        if residual:
            y = np.concatenate([y, xs[..., None] - y.sum(axis=-1, keepdims=True)], axis=-1)
        if niter:
            scale = max(1.0, np.abs(xs).max() / 10.0)
            y = norbert.expectation_maximization(y / scale, xs / scale, niter, eps=1e-10)[0] * scale
        parts.append(y)
    y = np.concatenate(parts)
    return [_torch_istft(y[..., j], len(wave)) for j in range(y.shape[-1])]


@pytest.mark.parametrize(
    "niter, residual, window, targets",
    [(0, False, 300, TARGETS), (1, False, 300, TARGETS), (1, False, 7, TARGETS),
     (2, False, None, TARGETS[:2]), (1, True, 9, ("vocals",)), (0, True, 300, TARGETS[:2])],
)
def test_matches_the_upstream_signal_path(niter, residual, window, targets):
    nets = _nets(targets)
    wave = _mixture()
    model = OpenUnmixSeparator(nets, niter=niter, residual=residual, wiener_win_len=window,
                               n_fft=N_FFT, n_hop=HOP, sample_rate=8000)
    stems = model(wave[None])
    names = list(targets) + (["residual"] if residual else [])
    assert sorted(stems) == sorted(names)
    for name, reference in zip(names, _reference(nets, wave, niter, residual, window)):
        assert stems[name].shape == (1, len(wave), 2)
        assert snr_db(reference, stems[name][0]) > 60, name


def test_batch_items_are_separated_on_their_own():
    nets = _nets(TARGETS[:2])
    model = OpenUnmixSeparator(nets, n_fft=N_FFT, n_hop=HOP, wiener_win_len=10)
    waves = np.stack([_mixture(seed=1), 3 * _mixture(seed=2)])
    together = model(waves)
    for index in range(2):
        alone = model(waves[index : index + 1])
        for name in together:
            assert snr_db(alone[name][0], together[name][index]) > 80


def test_keras_round_trip(tmp_path):
    nets = _nets(TARGETS[:2])
    model = OpenUnmixSeparator({"voice": nets[0], "beat": nets[1]}, niter=1, residual=True,
                               wiener_win_len=11, n_fft=N_FFT, n_hop=HOP, sample_rate=8000)
    path = tmp_path / "umx.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, OpenUnmixSeparator)
    assert restored.instruments == ("voice", "beat", "residual")
    assert (restored.wiener_win_len, restored.niter, restored.sample_rate) == (11, 1, 8000)
    wave = _mixture()[None]
    before, after = model(wave), restored(wave)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], atol=1e-6)


def test_mixed_precision_keeps_the_signal_path_in_float32():
    wave = _mixture()[None]
    weights = [net.get_weights() for net in _nets(TARGETS[:2])]
    reference = OpenUnmixSeparator(_nets(TARGETS[:2]), n_fft=N_FFT, n_hop=HOP)(wave)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        nets = [OpenUnmix(nb_bins=BINS, hidden_size=8, max_bin=20, target=name) for name in TARGETS[:2]]
        for net, values in zip(nets, weights):
            net.set_weights(values)
        model = OpenUnmixSeparator(nets, n_fft=N_FFT, n_hop=HOP)
        stems = model(wave)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for name, stem in stems.items():
        assert stem.dtype == "float32"
        # float16 networks, float32 STFT and filter: close, not equal.
        assert 20 < snr_db(reference[name], stem) < 100


def test_streamed_chunks_add_up_to_the_mixture():
    """With a residual and no EM the sources sum to the mixture in every
    frame, so the chunk geometry, cross-fades and overlap-add constant must
    give the input back across chunk seams."""
    model = OpenUnmixSeparator(_nets(TARGETS[:2]), niter=0, residual=True, n_fft=N_FFT, n_hop=HOP,
                               chunk_frames=24, overlap_frames=6, wiener_win_len=9)
    wave = _mixture(samples=2000)

    def run(segments, weights):
        return {name: np.array(stem) for name, stem in model.separate_segments(segments, weights).items()}

    stream = ChunkStream(model, overlap=model.overlap_frames, batch_size=2, run=run)
    outs = [stream.push(wave[:700]), stream.push(wave[700:], final=True)]
    stems = {name: np.concatenate([out[name] for out in outs]) for name in model.instruments}
    assert model.num_chunks(len(wave)) > 4
    assert snr_db(wave, sum(stems.values())) > 60
    # And the chunks differ from the whole-input path only a little.
    whole = model(wave[None])
    assert snr_db(whole["vocals"][0], stems["vocals"]) > 10


@pytest.mark.parametrize(
    "kwargs, message",
    [({"niter": -1}, "-1"), ({"wiener_win_len": 0}, "0"), ({"n_fft": 128}, "65"),
     ({"overlap_frames": 1500}, "1500"), ({"niter": 1, "single": True}, "niter=1")],
)
def test_bad_arguments_are_refused(kwargs, message):
    kwargs = dict(kwargs)
    nets = _nets(TARGETS[:1] if kwargs.pop("single", False) else TARGETS[:2])
    kwargs = {"n_fft": N_FFT, "n_hop": HOP, **kwargs}
    with pytest.raises(ValueError, match=message):
        OpenUnmixSeparator(nets, **kwargs)


# --- parity with real PyTorch openunmix.Separator (tests/data fixtures) ---

FIXTURE = __import__("os").path.join(__import__("os").path.dirname(__file__), "data", "openunmix_random.npz")


@pytest.fixture(scope="module")
def upstream():
    import glob
    import os

    from keras_sep.checkpoints.open_unmix import open_unmix_from_pth

    with np.load(FIXTURE) as data:
        arrays = {name: data[name] for name in data.files}
    folder = os.path.join(os.path.dirname(FIXTURE), "openunmix", "zip")
    nets = {name: open_unmix_from_pth(glob.glob(os.path.join(folder, f"{name}-*.pth"))[0]) for name in TARGETS}
    return arrays, nets


@pytest.mark.parametrize("run, options", [
    ("niter0", {"niter": 0}),
    ("niter1", {"niter": 1}),
    ("niter1_win8", {"niter": 1, "wiener_win_len": 8}),
    ("niter1_residual", {"niter": 1, "residual": True}),
])
def test_reproduces_pytorch_openunmix_separator(upstream, run, options):
    arrays, nets = upstream
    if options.get("residual"):
        nets = {"vocals": nets["vocals"]}
    model = OpenUnmixSeparator(nets, **{"wiener_win_len": 300, **options})
    stems = model(arrays["mixture"][None])
    for name in model.instruments:
        assert snr_db(arrays[f"{run}_{name}"], stems[name][0]) > 60, name


@pytest.mark.parametrize("run, options", [("niter1", {"niter": 1}), ("niter1_win8", {"niter": 1, "wiener_win_len": 8})])
def test_streamed_separator_reproduces_pytorch_on_a_one_chunk_input(upstream, run, options):
    """The streamed path frames the song as the whole-input call does
    (centred, reflections at the song's ends): an input that fits in one
    chunk is separated as upstream separates it."""
    from keras_sep.separation import Separator

    arrays, nets = upstream
    model = OpenUnmixSeparator(nets, **{"wiener_win_len": 300, **options})
    assert model.num_chunks(len(arrays["mixture"])) == 1
    stems = Separator(model, batch_size=1).separate(arrays["mixture"], sample_rate=int(arrays["sample_rate"]))
    for name in model.instruments:
        assert snr_db(arrays[f"{run}_{name}"], stems[name]) > 60, name


@pytest.mark.parametrize("samples", [300, 1000, 2000])
def test_the_stream_runs_the_song_frames_only(samples):
    """A short input is one chunk of its own frames, and a long one's last
    chunk holds only the frames left: the frames run are the song's
    (1 + samples // hop) plus the overlaps, never whole chunks of padding."""
    from keras_sep.separation import Separator

    model = OpenUnmixSeparator(_nets(TARGETS[:2]), niter=1, n_fft=N_FFT, n_hop=HOP,
                               chunk_frames=40, overlap_frames=8, wiener_win_len=16, sample_rate=8000)
    sep = Separator(model, batch_size=2)
    compiled, frames = sep._pipelines.pipeline, []

    def counting(batch):
        def run(segments, weights):
            frames.extend([weights.shape[1]] * len(weights))
            assert segments.shape[1] == (weights.shape[1] - 1) * HOP + N_FFT
            return compiled(batch)(segments, weights)
        return run

    sep._pipelines.pipeline = counting
    sep.separate(_mixture(samples), sample_rate=8000)
    count = model.num_chunks(samples)
    song = 1 + samples // HOP
    assert len(frames) == count
    assert sum(frames) == song + (count - 1) * model.overlap_frames
    if count == 1:
        assert frames == [song]
