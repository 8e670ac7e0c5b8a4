"""The openunmix.Separator outputs in tests/data/openunmix_random.npz are
reproduced by the converted Keras networks with a numpy STFT (torch's
``center=True``: reflect padding by n_fft // 2) and norbert's EM.

This pins down, independently of keras_sep's own separation code, what
every step of upstream's separation is: the 4-stem separator is checked
against the same fixture.
"""
import glob
import os

import norbert
import numpy as np
import pytest

from keras_sep.checkpoints.open_unmix import open_unmix_from_pth

DATA = os.path.join(os.path.dirname(__file__), "data")
EPS = 1e-10  # openunmix.filtering.wiener's default (norbert's is machine epsilon)


@pytest.fixture(scope="module")
def fixture():
    with np.load(os.path.join(DATA, "openunmix_random.npz")) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["targets"] = [str(t) for t in arrays["targets"]]
    return arrays


def stft(x, n_fft, hop, window):
    """``(samples, channels)`` → ``(frames, bins, channels)``, centred."""
    padded = np.pad(x, ((n_fft // 2, n_fft // 2), (0, 0)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft, axis=0)[::hop]
    return np.fft.rfft(frames * window, axis=-1).transpose(0, 2, 1)


def istft(spectrum, n_fft, hop, window, length):
    """Overlap-add with the squared-window normalisation of ``torch.istft``."""
    frames = np.fft.irfft(spectrum.transpose(0, 2, 1), n=n_fft, axis=-1) * window
    total = n_fft + hop * (len(frames) - 1)
    out = np.zeros((total, spectrum.shape[2]))
    norm = np.zeros(total)
    for index, frame in enumerate(frames):
        out[index * hop: index * hop + n_fft] += frame.T
        norm[index * hop: index * hop + n_fft] += window ** 2
    out /= np.where(norm > 1e-11, norm, 1.0)[:, None]
    return out[n_fft // 2: n_fft // 2 + length]


def wiener(v, x, niter, residual):
    """openunmix.filtering.wiener with ``softmask=False``."""
    y = v * np.exp(1j * np.angle(x[..., None]))
    if residual:
        y = np.concatenate([y, (x - y.sum(-1))[..., None]], -1)
    if niter:
        scale = max(1.0, np.abs(x).max() / 10.0)
        y = norbert.expectation_maximization(y / scale, x / scale, niter, eps=EPS)[0] * scale
    return y


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2))


@pytest.mark.parametrize("run, targets, niter, win_len, residual", [
    ("niter0", None, 0, 300, False),
    ("niter1", None, 1, 300, False),
    ("niter1_win8", None, 1, 8, False),
    ("niter1_residual", ["vocals"], 1, 300, True),
])
def test_separator_outputs_are_reproduced(fixture, run, targets, niter, win_len, residual):
    assert bool(fixture["center"]) and str(fixture["pad_mode"]) == "reflect"
    n_fft, hop = int(fixture["n_fft"]), int(fixture["n_hop"])
    window = fixture["window"].astype(np.float64)
    np.testing.assert_allclose(window, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft), atol=1e-6)
    mixture = fixture["mixture"].astype(np.float64)
    spectrum = stft(mixture, n_fft, hop, window)
    targets = targets or fixture["targets"]
    magnitudes = []
    for target in targets:
        (path,) = glob.glob(os.path.join(DATA, "openunmix", "zip", f"{target}-*.pth"))
        net = open_unmix_from_pth(path)
        magnitudes.append(net(np.abs(spectrum)[None].astype(np.float32), training=False).numpy()[0])
    v = np.stack(magnitudes, -1).astype(np.float64)
    estimates = np.zeros(spectrum.shape + (len(targets) + residual,), complex)
    for start in range(0, len(spectrum), win_len):
        window_frames = slice(start, start + win_len)
        estimates[window_frames] = wiener(v[window_frames], spectrum[window_frames].copy(), niter, residual)
    names = list(targets) + (["residual"] if residual else [])
    for index, name in enumerate(names):
        waveform = istft(estimates[..., index], n_fft, hop, window, len(mixture))
        assert snr_db(fixture[f"{run}_{name}"], waveform) > 60, name
