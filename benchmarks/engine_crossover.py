"""Where `keras-sep separate --engine litert` stops paying: wall time of a fresh
process per engine and input length, and the crossover of straight-line fits.

    python benchmarks/engine_crossover.py [--lengths 10.9 120] [--model spleeter:2stems] [--reps 2]

Each run is `python -m keras_sep.cli separate WAV --engine E` in a fresh
process (import, model load or cached export, separation, writing WAVs),
after two untimed runs of each engine that convert the model to LiteRT,
time TensorFlow's operator forms, save its plan and compile its XLA code,
all kept in the cache. ``tensorflow`` starts from the saved plan,
``tensorflow-keras`` loads the Keras model (``KERAS_SEP_PLAN_CACHE=0``, as
before a first TensorFlow run on the machine has saved the plan). Each
point is the minimum of ``--reps`` runs: the table is for the crossover,
not for small differences.
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


ENGINES = ("litert", "tensorflow", "tensorflow-keras")


def run_cli(path, engine, model, output):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if engine == "tensorflow-keras":
        engine, env["KERAS_SEP_PLAN_CACHE"] = "tensorflow", "0"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "keras_sep.cli", "separate", path, "-m", model, "--engine", engine,
         "-o", output, "--overwrite"],
        env=env, capture_output=True, text=True,  # no progress bars
    )
    if done.returncode:
        sys.exit(f"{engine} on {path} failed:\n{done.stderr}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[10.9, 120.0])
    parser.add_argument("--model", default="spleeter:2stems")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    paths = {}
    for seconds in args.lengths:
        paths[seconds] = os.path.join(folder, f"mix_{seconds:g}s.wav")
        sf.write(paths[seconds], tiled(seconds), RATE, subtype="FLOAT")
    for engine in ENGINES:  # warm-up: conversion, timing of forms, the saved plan and its XLA code
        for _ in range(2):
            run_cli(paths[args.lengths[0]], engine, args.model, os.path.join(folder, "out"))
    times = {}
    for _ in range(args.reps):  # interleaved, so a busy spell of the machine hits all
        for seconds, path in paths.items():
            for engine in ENGINES:
                took = run_cli(path, engine, args.model, os.path.join(folder, "out"))
                times[seconds, engine] = min(times.get((seconds, engine), took), took)
    print(f"load average {' / '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"{'audio s':>8}" + "".join(f" {engine + ' s':>18}" for engine in ENGINES))
    for seconds in args.lengths:
        print(f"{seconds:8.1f}" + "".join(f" {times[seconds, engine]:18.2f}" for engine in ENGINES))
    if len(args.lengths) >= 2:
        fits = {e: np.polyfit(args.lengths, [times[s, e] for s in args.lengths], 1) for e in ENGINES}
        for engine, (slope, start) in fits.items():
            print(f"{engine}: {start:.2f} s + {slope * 60:.2f} s per minute of audio")
        for engine in ENGINES[1:]:
            slope = fits["litert"][0] - fits[engine][0]
            if slope > 0:
                print(f"crossover litert / {engine}: {(fits[engine][1] - fits['litert'][1]) / slope:.0f} s of audio")

if __name__ == "__main__":
    main()
