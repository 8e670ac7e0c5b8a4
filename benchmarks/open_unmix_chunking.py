"""How much streamed (chunked) Open-Unmix separation differs from the
whole-song separation, per chunk length: SNR of the chunked stems against
the whole-song ones (higher = closer).

Uses the random-weight Open-Unmix networks of tests/data (hidden size 8,
real 4096/1024 STFT at 44.1 kHz) on a synthetic song of --seconds seconds.

    python benchmarks/open_unmix_chunking.py --seconds 120
"""
import argparse
import glob
import os

import numpy as np

from keras_sep.checkpoints.open_unmix import open_unmix_from_pth
from keras_sep.models import OpenUnmixSeparator
from keras_sep.separation import Separator

RATE = 44100
DATA = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "openunmix", "zip")


def song(seconds, seed=0):
    """Notes of changing pitch and loudness over coloured noise, panned."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    wave = np.zeros((n, 2))
    for voice in range(4):
        pitch = 110 * 2 ** (rng.integers(0, 24, size=int(seconds * 2) + 1) / 12)
        freq = np.repeat(pitch, RATE // 2)[:n]
        env = np.abs(np.sin(np.pi * t * (1 + voice))) ** 2
        tone = np.sin(2 * np.pi * np.cumsum(freq) / RATE) * env * 0.2
        wave += tone[:, None] * rng.uniform(0.3, 1.0, 2)
    noise = np.convolve(rng.standard_normal(n), np.hanning(32), mode="same")[:, None] * 0.01
    return (wave + noise).astype(np.float32)


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum((reference - estimate) ** 2.0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--chunks", default="902/302,1502/302,2102/302")
    args = parser.parse_args()
    nets = {t: open_unmix_from_pth(glob.glob(os.path.join(DATA, f"{t}-*.pth"))[0]) for t in ("vocals", "drums", "bass", "other")}
    wave = song(args.seconds)
    whole = OpenUnmixSeparator(nets)(wave[None])
    print(f"{args.seconds:g} s song; SNR (dB) of streamed stems against the whole-song separation", flush=True)
    print("chunk frames / overlap | " + " | ".join(nets) + "  (in brackets: without the first and last second)")
    for spec in args.chunks.split(","):
        chunk, overlap = map(int, spec.split("/"))
        model = OpenUnmixSeparator(nets, chunk_frames=chunk, overlap_frames=overlap)
        stems = Separator(model, batch_size=1, progress=False).separate(wave, sample_rate=RATE)
        inner = slice(RATE, len(wave) - RATE)
        print(f"{chunk} / {overlap} | " + " | ".join(
            f"{snr_db(np.asarray(whole[t][0]), stems[t]):.1f} ({snr_db(np.asarray(whole[t][0])[inner], stems[t][inner]):.1f})"
            for t in nets), flush=True)


if __name__ == "__main__":
    main()
