"""PNG figures of a separation: mixture spectrogram, masks and stems."""
import os

import numpy as np

from keras_sep import audio
from keras_sep.ops import spectra
from keras_sep.ops import stft as stft_ops

# A figure is for looking at, not for analysis: long tracks are shown up to
# this many seconds so the plot stays readable and cheap to make.
MAX_PLOT_SECONDS = 60.0


def _spectrogram(waveform, frame_length=2048, frame_step=512):
    """Magnitude ``(bins, frames)`` of the channel mean, frame ``t`` centred
    on sample ``t * frame_step`` so the time axis matches the waveform."""
    mono = np.asarray(waveform, np.float32).mean(axis=1, keepdims=True)
    spec = stft_ops.stft(mono[None], frame_length, frame_step, center=True)
    magnitude = np.asarray(spectra.magnitude(spec))[0, :, :, 0].T
    return magnitude[:, : max(1, len(waveform) // frame_step)]


def plot_separation(mixture, stems, sample_rate, path):
    """Write a PNG: the mixture's spectrogram, then per stem its mask and spectrogram.

    The mask shown is the effective one, ``|stem| / |mixture|`` per bin,
    clipped to [0, 1].

    Args:
        mixture: ``(samples, channels)``.
        stems: ``{instrument: (samples, channels)}``.
        sample_rate: Hz, for the axes.
        path: PNG to write.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mix = _spectrogram(mixture)
    rows = 1 + 2 * len(stems)
    figure, axes = plt.subplots(rows, 1, figsize=(10, 2.2 * rows), sharex=True)
    extent = [0, len(mixture) / sample_rate, 0, sample_rate / 2000.0]

    def show(axis, image, title, **kwargs):
        axis.imshow(image, origin="lower", aspect="auto", extent=extent, **kwargs)
        axis.set_title(title, fontsize=9)
        axis.set_ylabel("kHz")

    def db(magnitude):
        return 20 * np.log10(magnitude + 1e-6)

    top = db(mix).max()
    show(axes[0], db(mix), "mixture (dB)", vmin=top - 80, vmax=top, cmap="magma")
    for i, (name, stem) in enumerate(stems.items()):
        spec = _spectrogram(stem)
        frames = min(spec.shape[1], mix.shape[1])
        mask = np.clip(spec[:, :frames] / (mix[:, :frames] + 1e-8), 0.0, 1.0)
        show(axes[1 + 2 * i], mask, f"{name}: mask |stem|/|mixture|", vmin=0, vmax=1, cmap="viridis")
        show(axes[2 + 2 * i], db(spec), f"{name} (dB)", vmin=top - 80, vmax=top, cmap="magma")
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    _save_atomically(figure, os.fspath(path))
    plt.close(figure)
    return path


def _save_atomically(figure, path):
    """``figure.savefig`` under a temporary name in the same folder, renamed
    into place when complete: never a half-written PNG."""
    with audio.publishing(path) as temporary:
        figure.savefig(temporary, dpi=80, format="png")


def plot_files(mixture_path, stem_paths, path, offset=0.0, duration=None):
    """:func:`plot_separation` from files (at most ``MAX_PLOT_SECONDS`` shown)."""
    span = MAX_PLOT_SECONDS if duration is None else min(duration, MAX_PLOT_SECONDS)
    mixture, rate = audio.load(mixture_path, offset=offset, duration=span)
    stems = {n: audio.load(p, duration=span)[0] for n, p in stem_paths.items()}
    return plot_separation(mixture, stems, rate, path)
