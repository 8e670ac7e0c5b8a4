"""How Griffin–Lim phase reconstruction changes separation quality.

    python benchmarks/phase_sdr.py [--tracks 3] [--seconds 12] [--iterations 0 8 32 64]

Spleeter's 2-stems model (``spleeter:2stems``) separates rendered Bach
chorales (:func:`keras_sep.data.bach_chorales`, vocals = soprano,
accompaniment = the other voices and drums) with
``Separator(phase="mixture")`` (0 iterations) and
``Separator(phase="griffin_lim", phase_iterations=N)``, and BSS Eval v4
(museval, 1 s windows, median) scores the stems against the true ones.

Two more tables tell the causes apart:

* oracle magnitudes: each true stem's own STFT magnitude (4096/1024,
  centred) with the mixture's phase, then N fast Griffin–Lim iterations
  from it (:func:`keras_sep.ops.griffin_lim`): what phase reconstruction
  gives when the magnitude is right;
* the example song (Spleeter's, 10.9 s, no true stems): how far the
  Griffin–Lim stems move from the mixture-phase ones, as the SNR of the
  difference (dB; higher is closer).

Prints Markdown tables with the command, machine and date.
"""
import argparse
import datetime
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "shared", "data", "spleeter_2stems", "input_waveform.npy")
TARGETS = {"vocals": ["vocals"], "accompaniment": ["alto", "tenor", "bass", "drums"]}
FRAME, HOP = 4096, 1024

sys.path.insert(0, HERE)
from griffin_lim import machine  # noqa: E402  (the benchmark beside this one)


def chorale_tracks(count, seconds, seed):
    from keras_sep import data, evaluation

    root = data.bach_chorales(num_tracks=count, seconds=seconds, seed=seed, progress=False)
    tracks = []
    for subset in ("test", "train"):
        tracks += list(evaluation.folder_tracks(root, subset, TARGETS, 44100))
    return tracks[:count]


def oracle(mixture, references, iterations):
    """Each true stem's magnitude, the mixture's phase, then Griffin-Lim."""
    import tensorflow as tf

    from keras_sep.ops import stft as stft_ops
    from keras_sep.ops.griffin_lim import griffin_lim

    run = tf.function(
        lambda magnitude, phase: griffin_lim(magnitude, iterations, 0.99, phase, FRAME, HOP, length=len(mixture)),
        jit_compile=True,
    )
    phase = stft_ops.stft(mixture[None], FRAME, HOP, center=True)
    return {
        name: run(tf.abs(stft_ops.stft(source[None], FRAME, HOP, center=True)), phase).numpy()[0]
        for name, source in references.items()
    }


def snr(reference, estimate):
    return 10 * np.log10(np.sum(reference**2) / max(np.sum((reference - estimate) ** 2), 1e-20))


def table(title, rows, iterations, names):
    print(f"\n{title}\n")
    print("| iterations | " + " | ".join(names) + " | seconds |")
    print("|---:|" + "---:|" * (len(names) + 1))
    for n in iterations:
        scores, seconds = rows[n]
        print(f"| {n or 'mixture phase'} | " + " | ".join(f"{np.mean(scores[k]):.2f}" for k in names) + f" | {seconds:.1f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, nargs="+", default=[0, 8, 32, 64])
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_sep.evaluation import bss_eval
    from keras_sep.separation import Separator

    base = Separator.from_preset("spleeter:2stems", batch_size=1)
    separators = {
        n: base if n == 0 else Separator(base.model, batch_size=1, phase="griffin_lim", phase_iterations=n)
        for n in args.iterations
    }
    names = list(TARGETS)
    tracks = chorale_tracks(args.tracks, args.seconds, args.seed)
    separated = {n: ({k: [] for k in names}, 0.0) for n in args.iterations}
    oracles = {n: ({k: [] for k in names}, 0.0) for n in args.iterations}
    for track, mixture, references in tracks:
        print(f"{track}: {len(mixture) / 44100:.1f} s", file=sys.stderr)
        for n, separator in separators.items():
            separator.separate(mixture[:44100], 44100)  # compile outside the timing
            start = time.perf_counter()
            stems = separator.separate(mixture, 44100)
            scores, seconds = separated[n]
            separated[n] = (scores, seconds + time.perf_counter() - start)
            for name, values in bss_eval(references, stems).items():
                scores[name].append(values["SDR"])
            start = time.perf_counter()
            estimates = oracle(mixture, references, n)
            scores, seconds = oracles[n]
            oracles[n] = (scores, seconds + time.perf_counter() - start)
            for name, values in bss_eval(references, estimates).items():
                scores[name].append(values["SDR"])

    example = np.load(EXAMPLE).astype(np.float32)
    plain = base.separate(example, 44100)
    moved = {}
    for n, separator in separators.items():
        start = time.perf_counter()
        stems = separator.separate(example, 44100)
        moved[n] = ({k: [snr(plain[k], stems[k])] for k in names}, time.perf_counter() - start)

    command = "python benchmarks/phase_sdr.py " + " ".join(sys.argv[1:])
    print(f"`{command.strip()}` on {machine()}, {datetime.date.today().isoformat()}; "
          f"{len(tracks)} chorales of {args.seconds:g} s (seed {args.seed}), SDR in dB, mean of the tracks' medians")
    table("Spleeter 2-stems, stems' SDR (seconds: separating all tracks)", separated, args.iterations, names)
    table("Oracle magnitudes (true stems'), SDR from the mixture phase", oracles, args.iterations, names)
    shown = [n for n in args.iterations if n]
    moved = {n: moved[n] for n in shown}
    table("Example song (10.9 s): SNR of the Griffin-Lim stems against the mixture-phase ones", moved, shown, names)


if __name__ == "__main__":
    main()
