"""Where `keras-sep separate --engine litert` stops paying: wall time of a fresh
process per engine and input length, and the crossover of straight-line fits.

    python benchmarks/engine_crossover.py [--lengths 10.9 120] [--model spleeter:2stems]

Each run is `python -m keras_sep.cli separate WAV --engine E` in a fresh
process (import, model load or cached export, separation, writing WAVs),
after one untimed run of each engine that converts the model to LiteRT and
times TensorFlow's operator forms, both kept in the cache. One run per
point: the table is for the crossover, not for small differences.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
INPUT = os.path.join(HERE, "..", "..", "shared", "data", "spleeter_2stems", "input_waveform.npy")
RATE = 44100


def tiled(seconds):
    wave = np.load(INPUT).astype(np.float32)
    n = int(round(seconds * RATE))
    return np.ascontiguousarray(np.tile(wave, (n // len(wave) + 1, 1))[:n])


def run_cli(path, engine, model, output):
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "keras_sep.cli", "separate", path, "-m", model, "--engine", engine,
         "-o", output, "--overwrite"],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True, text=True,  # no progress bars
    )
    if done.returncode:
        sys.exit(f"{engine} on {path} failed:\n{done.stderr}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[10.9, 120.0])
    parser.add_argument("--model", default="spleeter:2stems")
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    paths = {}
    for seconds in args.lengths:
        paths[seconds] = os.path.join(folder, f"mix_{seconds:g}s.wav")
        sf.write(paths[seconds], tiled(seconds), RATE, subtype="FLOAT")
    for engine in ("litert", "tensorflow"):  # warm-up: conversion, timing of forms
        run_cli(paths[args.lengths[0]], engine, args.model, os.path.join(folder, "out"))
    times = {(s, e): run_cli(p, e, args.model, os.path.join(folder, "out"))
             for s, p in paths.items() for e in ("litert", "tensorflow")}
    print(f"{'audio s':>8} {'litert s':>9} {'tensorflow s':>13}")
    for seconds in args.lengths:
        print(f"{seconds:8.1f} {times[seconds, 'litert']:9.2f} {times[seconds, 'tensorflow']:13.2f}")
    if len(args.lengths) >= 2:
        fits = {e: np.polyfit(args.lengths, [times[s, e] for s in args.lengths], 1) for e in ("litert", "tensorflow")}
        for engine, (slope, start) in fits.items():
            print(f"{engine}: {start:.2f} s + {slope * 60:.2f} s per minute of audio")
        slope = fits["litert"][0] - fits["tensorflow"][0]
        if slope > 0:
            print(f"crossover: {(fits['tensorflow'][1] - fits['litert'][1]) / slope:.0f} s of audio")


if __name__ == "__main__":
    main()
