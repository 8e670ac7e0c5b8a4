"""museval-based evaluation, oracle masks and the result table."""
import numpy as np
import pytest
import soundfile as sf

from keras_sep import evaluation, plotting


def hann(frame_length):
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length) / frame_length)


def numpy_stft(x, frame_length, frame_step):
    """Reference: ``(samples, channels)`` → ``(frames, bins, channels)``,
    frame ``t`` centred on sample ``t * frame_step`` (zeros padded)."""
    half = frame_length // 2
    padded = np.pad(x.astype(np.float64), ((half, half), (0, 0)))
    count = 1 + (len(padded) - frame_length) // frame_step
    index = np.arange(frame_length)[None, :] + frame_step * np.arange(count)[:, None]
    return np.fft.rfft(padded[index] * hann(frame_length)[None, :, None], axis=1)


def numpy_istft(spec, frame_length, frame_step, length):
    """Reference inverse of :func:`numpy_stft`: overlap-add divided by the
    squared windows of the frames present."""
    window = hann(frame_length)
    frames = np.fft.irfft(spec, n=frame_length, axis=1) * window[None, :, None]
    total = (len(frames) - 1) * frame_step + frame_length
    out, norm = np.zeros((total, spec.shape[2])), np.zeros(total)
    for i, frame in enumerate(frames):
        out[i * frame_step : i * frame_step + frame_length] += frame
        norm[i * frame_step : i * frame_step + frame_length] += window**2
    half = frame_length // 2
    return (out / np.maximum(norm, 1e-8)[:, None])[half : half + length]


def numpy_oracle(mixture, sources, kind, frame_length, frame_step):
    mix_spec = numpy_stft(mixture, frame_length, frame_step)
    magnitudes = np.stack([np.abs(numpy_stft(s, frame_length, frame_step)) for s in sources.values()])
    if kind == "irm":
        masks = magnitudes / (magnitudes.sum(axis=0, keepdims=True) + 1e-10)
    else:
        masks = (magnitudes == magnitudes.max(axis=0, keepdims=True)).astype(np.float64)
    return {n: numpy_istft(mix_spec * m, frame_length, frame_step, len(mixture)) for n, m in zip(sources, masks)}


def _sources(seconds=3, rate=8000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)[:, None] * np.ones((1, 2))
    noise = 0.1 * rng.standard_normal((len(t), 2))
    return {"vocals": tone.astype(np.float32), "accompaniment": noise.astype(np.float32)}


class PerfectSeparator:
    """Returns the true sources, plus a known error for one of them."""

    sample_rate = 8000

    def __init__(self, sources, error=0.0):
        self.sources, self.error = sources, error

    def separate(self, mixture, sample_rate=None):
        out = dict(self.sources)
        out["vocals"] = out["vocals"] + self.error * self.sources["accompaniment"]
        return out


def test_oracle_masks_reconstruct_separable_sources():
    sources = _sources()
    mixture = sources["vocals"] + sources["accompaniment"]
    for kind in ("irm", "ibm"):
        estimates = evaluation.oracle_separation(mixture, sources, kind, frame_length=512, frame_step=128)
        total = sum(estimates.values())
        if kind == "irm":  # ratio masks sum to one: the estimates add up to the mixture
            np.testing.assert_allclose(total, mixture, atol=1e-4)
        scores = evaluation.bss_eval(sources, estimates, window=8000, hop=8000)
        assert scores["vocals"]["SDR"] > 15


@pytest.mark.parametrize("kind", ["irm", "ibm"])
@pytest.mark.parametrize("frame_length, frame_step, length", [(512, 128, 24000), (400, 160, 2345), (256, 64, 3001)])
def test_oracle_masks_match_a_numpy_reference(kind, frame_length, frame_step, length):
    """Ideal masks on the package's STFT are the ideal masks of a float64
    numpy STFT with the same framing (Hann, centred frames)."""
    sources = {n: s[:length] for n, s in _sources().items()}
    sources["accompaniment"] = sources["accompaniment"] * 2.0  # fewer near-ties for the IBM
    mixture = sources["vocals"] + sources["accompaniment"]
    estimates = evaluation.oracle_separation(mixture, sources, kind, frame_length, frame_step)
    reference = numpy_oracle(mixture, sources, kind, frame_length, frame_step)
    for name in sources:
        assert estimates[name].shape == mixture.shape and estimates[name].dtype == np.float32
        error = estimates[name] - reference[name]
        # float32 against float64: about 135 dB here (no IBM bin flips).
        snr = 10 * np.log10(np.sum(reference[name] ** 2) / np.sum(error**2))
        assert snr > 110, (name, snr)


def test_plot_spectrogram_frames_are_centred_on_the_waveform():
    rng = np.random.default_rng(1)
    wave = rng.standard_normal((5000, 2)).astype(np.float32)
    image = plotting._spectrogram(wave, frame_length=256, frame_step=64)
    reference = np.abs(numpy_stft(wave.mean(axis=1, keepdims=True), 256, 64))[:, :, 0].T
    assert image.shape == (129, 5000 // 64)
    np.testing.assert_allclose(image, reference[:, : 5000 // 64], rtol=1e-4, atol=1e-4)
    # A click at sample 3200 peaks in frame 3200 / 64 = 50.
    click = np.zeros((5000, 1), np.float32)
    click[3200] = 1.0
    assert np.argmax(plotting._spectrogram(click, 256, 64).sum(axis=0)) == 50


def test_sdr_of_a_known_distortion():
    sources = _sources()
    mixture = sources["vocals"] + sources["accompaniment"]
    error = 0.1
    results = evaluation.evaluate(PerfectSeparator(sources, error), [("t", mixture, sources)],
                                  oracles=("irm",), window=8000, hop=8000, progress=False)
    row = results["tracks"]["t"]
    # vocals estimate = s + 0.1·n: the interference is exactly 0.1·n, so
    # SIR = 10 log10(|s|² / |0.1 n|²) (museval projects on the references).
    s, n = sources["vocals"], sources["accompaniment"]
    expected_sir = 10 * np.log10(np.sum(s**2) / np.sum((error * n) ** 2))
    assert row["model"]["vocals"]["SIR"] == pytest.approx(expected_sir, abs=0.5)
    assert row["model"]["accompaniment"]["SDR"] > 60  # exact estimate
    # NSDR is the gain over the mixture as estimate.
    nsdr = row["model"]["vocals"]["SDR"] - row["mixture"]["vocals"]["SDR"]
    assert row["model"]["vocals"]["NSDR"] == pytest.approx(nsdr)
    table = evaluation.format_table(results)
    assert "| model | vocals |" in table and "| oracle_irm | accompaniment |" in table


def test_folder_tracks_groups_stems(tmp_path):
    rng = np.random.default_rng(3)
    stems = {n: rng.uniform(-0.2, 0.2, (800, 2)).astype(np.float32) for n in ("vocals", "drums", "bass")}
    folder = tmp_path / "test" / "song"
    folder.mkdir(parents=True)
    for name, wave in stems.items():
        sf.write(folder / f"{name}.wav", wave, 8000, subtype="FLOAT")
    targets = {"vocals": ["vocals"], "accompaniment": ["drums", "bass"]}
    (track, mixture, sources), = evaluation.folder_tracks(tmp_path, "test", targets, sample_rate=8000)
    assert track == "song"
    np.testing.assert_allclose(sources["accompaniment"], stems["drums"] + stems["bass"], atol=1e-6)
    np.testing.assert_allclose(mixture, sum(stems.values()), atol=1e-6)


def test_folder_tracks_skips_stray_files_and_names_bad_tracks(tmp_path):
    rng = np.random.default_rng(4)
    subset = tmp_path / "test"
    good = subset / "a_song"
    good.mkdir(parents=True)
    for name in ("vocals", "drums"):
        sf.write(good / f"{name}.wav", rng.uniform(-0.2, 0.2, (800, 2)).astype(np.float32), 8000)
    (subset / "README.txt").write_text("not a track")  # was a NotADirectoryError
    (subset / ".hidden").mkdir()
    (good / "notes.txt").write_text("x")
    tracks = list(evaluation.folder_tracks(tmp_path, "test", sample_rate=8000))
    assert [t[0] for t in tracks] == ["a_song"] and sorted(tracks[0][2]) == ["drums", "vocals"]

    with pytest.raises(ValueError, match=r"a_song: no stem \['bass'\] for target 'accompaniment'"):
        list(evaluation.folder_tracks(tmp_path, "test", {"accompaniment": ["drums", "bass"]}, sample_rate=8000))
    sf.write(good / "mixture.wav", np.zeros((700, 2), np.float32), 8000)
    with pytest.raises(ValueError, match="a_song: stems differ in length"):
        list(evaluation.folder_tracks(tmp_path, "test", sample_rate=8000))
    only_mix = subset / "b_mix_only"
    only_mix.mkdir()
    sf.write(only_mix / "mixture.wav", np.zeros((800, 2), np.float32), 8000)
    (good / "mixture.wav").unlink()
    with pytest.raises(ValueError, match="b_mix_only: no stem files besides the mixture"):
        list(evaluation.folder_tracks(tmp_path, "test", sample_rate=8000))
