"""Separate a song with Spleeter's pretrained 2-stem model, from Python.

    python examples/separate_song.py [SONG] [-o OUTDIR] [--chunking overlap|spleeter]

Without SONG, Spleeter's example excerpt is fetched (once) and used. Writes
one WAV per stem and a PNG of the mixture spectrogram, masks and stems, and
prints each stem's level.
"""
import argparse
import os

import numpy as np

from keras_sep import audio, plotting, pretrained
from keras_sep.separation import Separator


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("song", nargs="?", help="audio file (default: Spleeter's example)")
    parser.add_argument("-o", "--output", default="separated")
    parser.add_argument("--chunking", choices=("overlap", "spleeter"), default="overlap")
    args = parser.parse_args()

    song = args.song or pretrained.fetch_asset("audio_example.mp3")
    separator = Separator.from_preset("spleeter:2stems", chunking=args.chunking)
    mixture, rate = audio.load(song)
    stems = separator.separate(mixture, sample_rate=rate)

    track = os.path.splitext(os.path.basename(song))[0]
    folder = os.path.join(args.output, track)
    print(f"{song}: {len(mixture) / rate:.1f} s at {rate} Hz")
    for name, stem in stems.items():
        path = os.path.join(folder, f"{name}.wav")
        audio.save(path, stem, rate)
        level = 10 * np.log10(np.mean(stem**2) / np.mean(mixture**2) + 1e-12)
        print(f"  {name:14s} {level:6.1f} dB re mixture  → {path}")
    png = plotting.plot_separation(mixture, stems, rate, os.path.join(args.output, f"{track}.png"))
    print(f"  plot → {png}")


if __name__ == "__main__":
    main()
