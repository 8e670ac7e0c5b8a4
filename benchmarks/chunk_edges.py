"""How much the U-Net's output depends on where a frame sits in its chunk.

    python benchmarks/chunk_edges.py [--seconds 60] [--step 64]

The separator runs the network on chunks of 512 frames; near a chunk's edge
the network sees zeros where music would be, so its masks there differ from
what it computes with context on both sides. This separates the same audio
(Spleeter's example, tiled) in Spleeter's non-overlapping chunks with the
chunk grid shifted by ``step`` frames at a time, takes for every 1024-sample
block the run in which its frame sits nearest a chunk's centre as the
reference, and prints the error of the other runs against it by the frame's
distance from the nearest chunk edge. It is the evidence for the default
overlap of 64 cross-faded frames: the cross-fade gives the frames nearest an
edge the least weight.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from separate_speed import tiled  # noqa: E402

BANDS = [0, 8, 16, 32, 64, 96, 128, 192]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--step", type=int, default=64, help="shift of the chunk grid between runs, frames")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_sep import pretrained
    from keras_sep.separation import Separator

    model = pretrained.load_model("spleeter:2stems")
    hop, frames = model.frame_step, model.chunk_frames
    lead = model.frame_length // hop  # frames of the zero lead-in before the input
    wave = tiled(args.seconds)
    separator = Separator(model, chunking="spleeter", progress=False)
    runs = {}
    for offset in range(0, frames, args.step):
        shifted = np.concatenate([np.zeros((offset * hop, wave.shape[1]), np.float32), wave])
        runs[offset] = {name: stem[offset * hop :] for name, stem in separator.separate(shifted).items()}

    def position(block, offset):
        return (block + lead + offset) % frames

    error = {name: np.zeros(frames // 2) for name in model.instruments}
    energy = {name: np.zeros(frames // 2) for name in model.instruments}
    for block in range(len(wave) // hop):
        central = min(runs, key=lambda o: abs(position(block, o) - frames // 2))
        span = slice(block * hop, (block + 1) * hop)
        for offset, stems in runs.items():
            if offset == central:
                continue
            p = position(block, offset)
            distance = min(p, frames - 1 - p)
            for name in model.instruments:
                reference = runs[central][name][span].astype(np.float64)
                error[name][distance] += np.sum((stems[name][span] - reference) ** 2)
                energy[name][distance] += np.sum(reference**2)

    print(f"{args.seconds:g} s, chunk grid shifted by {args.step} frames between runs; error against the most "
          "central run, dB (lower is closer)")
    print("| frames from the chunk edge | " + " | ".join(model.instruments) + " |")
    print("|---|" + "---|" * len(model.instruments))
    for low, high in zip(BANDS[:-1], BANDS[1:]):
        cells = [f"{10 * np.log10(error[n][low:high].sum() / energy[n][low:high].sum()):.1f}" for n in model.instruments]
        print(f"| {low}–{high - 1} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
