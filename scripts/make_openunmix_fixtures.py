"""Make the Open-Unmix parity fixtures in tests/data/ with real PyTorch.

Run once, in a throwaway environment (PyTorch is not a keras_sep dependency):

    python3 -m venv /tmp/umx_venv
    /tmp/umx_venv/bin/pip install torch==2.13.0
    /tmp/umx_venv/bin/pip install --no-deps openunmix==1.3.0
    /tmp/umx_venv/bin/pip install numpy tqdm
    /tmp/umx_venv/bin/python scripts/make_openunmix_fixtures.py

It writes, under tests/data/openunmix/:

- ``zip/<target>-<sha8>.pth`` and ``legacy/<target>-<sha8>.pth`` for the
  targets vocals, drums, bass and other: state dicts of upstream's
  ``OpenUnmix`` (2049 bins, stereo, max_bin 1487 as umxhq, a small
  ``hidden_size``) with seeded random weights, saved in PyTorch's zip format
  and in its legacy (pre-1.6) format; ``sha8`` is the first 8 hex digits of
  the file's sha256, as upstream names its files. The weights are drawn on
  a grid of 1/256 so that git stores them compactly.
- ``small/speech-<sha8>.pth``: a small mono unidirectional model (``SMALL``).
- ``openunmix_random.npz``: the mixture, the STFT settings, the network's
  input and output for one target, and ``openunmix.Separator``'s outputs;
  the keys are listed in ``tests/data/README.md``.

openunmix imports torchaudio at module level but none of the parts used
here need it; this script puts an empty stand-in module in its place.
"""
import hashlib
import io
import os
import sys
import types

import numpy as np
import torch

sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))  # this script only

from openunmix.model import OpenUnmix, Separator  # noqa: E402

RATE = 44100
N_FFT = 4096
N_HOP = 1024
NB_BINS = N_FFT // 2 + 1
MAX_BIN = 1487  # openunmix.utils.bandwidth_to_max_bin(44100, 4096, 16000)
HIDDEN = 8
TARGETS = ("vocals", "drums", "bass", "other")
SECONDS = 0.5
NET_FRAMES = 10
WIENER_WIN_LEN = 8
SEED = 19
GRID = 256.0
SMALL = dict(nb_bins=65, nb_channels=1, hidden_size=6, nb_layers=2, max_bin=40, unidirectional=True)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "openunmix")


def _grid(values):
    return torch.round(values * GRID) / GRID


def random_model(seed, **kwargs):
    """An eval-mode OpenUnmix whose every parameter and BN statistic is random."""
    torch.manual_seed(seed)
    args = dict(nb_bins=NB_BINS, nb_channels=2, hidden_size=HIDDEN, max_bin=MAX_BIN)
    model = OpenUnmix(**{**args, **kwargs})
    state = model.state_dict()
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            continue
        if name.endswith("running_var"):
            new = torch.rand_like(value) * 1.5 + 0.5
        elif name == "input_scale":
            new = torch.rand_like(value) * 0.5 + 0.05  # 1 / std of the magnitudes
        elif name == "input_mean":
            new = -torch.rand_like(value) * 2.0
        elif name in ("output_scale", "output_mean") or name.endswith(".weight") and name.startswith("bn"):
            new = 1.0 + 0.5 * torch.randn_like(value)
        elif name.startswith("lstm"):
            new = 0.5 * torch.randn_like(value)
        else:
            new = torch.randn_like(value) / max(value.shape[-1], 1) ** 0.5
        state[name] = _grid(new)
    model.load_state_dict(state)
    return model.eval()


def save(state, folder, target, legacy):
    buffer = io.BytesIO()
    torch.save(state, buffer, _use_new_zipfile_serialization=not legacy)
    payload = buffer.getvalue()
    name = f"{target}-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(payload)
    return name


def mixture():
    """Half a second of stereo tones, a chirp and noise, different per channel."""
    rng = np.random.default_rng(SEED)
    t = np.arange(int(SECONDS * RATE)) / RATE
    left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * (500 + 3000 * t) * t)
    right = 0.25 * np.sin(2 * np.pi * 330 * t + 0.5) + 0.1 * np.sign(np.sin(2 * np.pi * 110 * t))
    audio = np.stack([left, right]) + 0.05 * rng.standard_normal((2, t.size))
    return audio.astype("float32")  # (channels, samples)


def main():
    torch.set_num_threads(1)
    models = {target: random_model(SEED + k) for k, target in enumerate(TARGETS)}
    files = {}
    for target, model in models.items():
        state = model.state_dict()
        files[target] = save(state, os.path.join(OUT, "zip"), target, legacy=False)
        assert save(state, os.path.join(OUT, "legacy"), target, legacy=True)

    audio = mixture()
    x = torch.from_numpy(audio)[None]  # (1, channels, samples)
    arrays = {
        "mixture": audio.T,  # (samples, channels)
        "sample_rate": np.int64(RATE),
        "n_fft": np.int64(N_FFT),
        "n_hop": np.int64(N_HOP),
        "center": np.bool_(True),
        "pad_mode": np.str_("reflect"),
        "window": torch.hann_window(N_FFT).numpy(),  # periodic Hann
        "max_bin": np.int64(MAX_BIN),
        "hidden_size": np.int64(HIDDEN),
        "targets": np.array(TARGETS),
        "files": np.array([files[t] for t in TARGETS]),
        "wiener_win_len": np.int64(WIENER_WIN_LEN),
    }
    with torch.no_grad():
        separator = Separator(models, niter=0, n_fft=N_FFT, n_hop=N_HOP, nb_channels=2,
                              sample_rate=RATE, wiener_win_len=300).eval()
        magnitude = separator.complexnorm(separator.stft(x))  # (1, channels, bins, frames)
        net_input = magnitude[..., :NET_FRAMES].contiguous()
        net_output = models["vocals"](net_input.clone())
        # (batch, frames, bins, channels), keras_sep's layout.
        arrays["net_input"] = net_input.permute(0, 3, 2, 1).numpy()
        arrays["net_output_vocals"] = net_output.permute(0, 3, 2, 1).numpy()

        # A small causal mono model: the unidirectional LSTM's conversion.
        small = random_model(SEED - 1, **SMALL)
        save(small.state_dict(), os.path.join(OUT, "small"), "speech", legacy=False)
        small_input = torch.rand(2, 1, SMALL["nb_bins"], 12, generator=torch.Generator().manual_seed(SEED)) * 3
        arrays["small_input"] = small_input.permute(0, 3, 2, 1).numpy()
        arrays["small_output"] = small(small_input.clone()).permute(0, 3, 2, 1).numpy()

        runs = {
            "niter0": dict(niter=0),
            "niter1": dict(niter=1),
            f"niter1_win{WIENER_WIN_LEN}": dict(niter=1, wiener_win_len=WIENER_WIN_LEN),
        }
        for run, options in runs.items():
            separator = Separator(models, n_fft=N_FFT, n_hop=N_HOP, nb_channels=2,
                                  sample_rate=RATE, **{"wiener_win_len": 300, **options}).eval()
            estimates = separator(x)[0]  # (targets, channels, samples)
            for k, target in enumerate(TARGETS):
                arrays[f"{run}_{target}"] = estimates[k].T.numpy()
        separator = Separator({"vocals": models["vocals"]}, niter=1, residual=True, n_fft=N_FFT,
                              n_hop=N_HOP, nb_channels=2, sample_rate=RATE, wiener_win_len=300).eval()
        estimates = separator(x)[0]
        arrays["niter1_residual_vocals"] = estimates[0].T.numpy()
        arrays["niter1_residual_residual"] = estimates[1].T.numpy()

    np.savez_compressed(os.path.join(OUT, "..", "openunmix_random.npz"), **arrays)
    for name in sorted(arrays):
        print(name, np.shape(arrays[name]))


if __name__ == "__main__":
    main()
