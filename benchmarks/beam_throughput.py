"""Files per minute: the Apache Beam job (keras_sep.beam, DirectRunner) against
the CLI's one-process loop over the same files.

    python benchmarks/beam_throughput.py [--files 6] [--seconds 20] [--model spleeter:2stems]
        [--modes loop beam beam-2proc]

Each mode runs in a fresh process on the same generated WAVs (44.1 kHz
stereo, tones over noise) and writes WAV stems to its own folder:
  loop        Separator.from_preset(model), then separate_to_file() for each
              file in turn: what `keras-sep separate FILES...` does;
  beam        keras_sep.beam.separate_files() with the in-process
              DirectRunner (--direct_num_workers=1): match, group, separate
              with one separator per process, dead-letter file;
  beam-2proc  (not in the default set) the DirectRunner with two worker
              processes (--direct_running_mode=multi_processing), each
              loading its own separator.
The time is the wall time from loading the model (or starting the pipeline)
to the last stem written; importing TensorFlow and Beam is excluded and
shown apart. Needs the beam extra (pip install keras-sep[beam]).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

RATE = 44100


def make_files(folder, count, seconds):
    import soundfile as sf

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    for i in range(count):
        tones = sum(np.sin(2 * np.pi * f * t + p) for f, p in zip(rng.uniform(80, 2000, 4), rng.uniform(0, 6, 4)))
        wave = 0.1 * tones[:, None] + 0.05 * rng.standard_normal((len(t), 2))
        sf.write(os.path.join(folder, f"song{i:02d}.wav"), wave.astype(np.float32), RATE, subtype="PCM_16")


def worker(mode, folder, output, model):
    start = time.perf_counter()
    import tensorflow  # noqa: F401

    from keras_sep.separation import Separator

    if mode != "loop":
        import keras_sep.beam as beam
    imported = time.perf_counter()
    if mode == "loop":
        separator = Separator.from_preset(model)
        for name in sorted(os.listdir(folder)):
            separator.separate_to_file(os.path.join(folder, name), output)
        done = len(os.listdir(folder))
    else:
        extra = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
        if mode == "beam-2proc":
            extra = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
        counts = beam.separate_files(os.path.join(folder, "*.wav"), output, model, pipeline_args=extra)
        assert counts["failed"] == 0, counts
        done = counts["separated"]
    end = time.perf_counter()
    print(json.dumps({"mode": mode, "files": done, "import_s": imported - start, "run_s": end - imported}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--model", default="spleeter:2stems")
    parser.add_argument("--modes", nargs="+", default=["loop", "beam"], choices=["loop", "beam", "beam-2proc"])
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "INPUT", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(*args.worker, args.model)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        music = os.path.join(scratch, "music")
        os.makedirs(music)
        make_files(music, args.files, args.seconds)
        for mode in args.modes:
            out = subprocess.run(
                [sys.executable, __file__, "--model", args.model, "--worker", mode, music, os.path.join(scratch, mode)],
                check=True, capture_output=True, text=True,
            ).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    audio_min = args.files * args.seconds / 60
    print(f"{args.files} files of {args.seconds:g} s, {args.model}")
    print("| mode | files | imports s | load + separate s | files/min | audio min/min |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['mode']} | {row['files']} | {row['import_s']:.1f} | {row['run_s']:.1f} | "
              f"{60 * row['files'] / row['run_s']:.1f} | {audio_min * 60 / row['run_s']:.2f} |")


if __name__ == "__main__":
    main()
