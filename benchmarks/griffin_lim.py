"""Griffin–Lim speed and quality: keras_sep against librosa.griffinlim, same run.

    python benchmarks/griffin_lim.py [--iterations 100] [--seconds 30] [--rates 22050 44100]
        [--batch 8] [--reps 3]

Real audio: Spleeter's example song (../shared/data), mono, resampled to
each rate and repeated to ``--seconds``; the ``--batch`` clips are that
signal at different offsets. STFT 2048 / 512 (Hann, centred), momentum
0.99, ``--iterations`` iterations, both from the same random initial phase
(the one librosa draws with ``random_state=0``, given to keras_sep as
``init``), so their spectral convergences should agree. keras_sep runs :func:`keras_sep.ops.griffin_lim` under
``tf.function(jit_compile=True)``, compiled before the timing; librosa
runs as it ships (NumPy / SciPy FFTs). One clip: both take one
``(bins, frames)`` magnitude; a batch: keras_sep takes ``(batch, frames,
bins, 1)`` in one call, librosa loops over the clips (faster per clip
than giving it a ``(batch, bins, frames)`` array). Times are the best of ``--reps`` runs (the batch runs
of librosa once: they are the slowest); spectral convergence is
``‖|STFT(x̂)| − A‖_F / ‖A‖_F`` of the returned signal, mean over clips.
"""
import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "shared", "data", "spleeter_2stems", "input_waveform.npy")
FFT, HOP = 2048, 512


def machine():
    with open("/proc/cpuinfo") as info:
        name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), platform.processor())
    return f"{name}, {os.cpu_count()} cores"


def clips(rate, seconds, count):
    import soxr

    mono = np.load(EXAMPLE).mean(axis=1)
    signal = soxr.resample(mono, 44100, rate).astype(np.float32)
    n = int(seconds * rate)
    step = len(signal) // max(count, 1)
    long = np.tile(signal, n // len(signal) + 2)
    return np.stack([long[i * step : i * step + n] for i in range(count)])


def convergence(signals, magnitudes):
    import librosa

    rebuilt = np.abs(librosa.stft(signals, n_fft=FFT, hop_length=HOP))
    axes = tuple(range(1, rebuilt.ndim))
    return float(np.mean(np.sqrt(np.sum((rebuilt - magnitudes) ** 2, axis=axes) / np.sum(magnitudes**2, axis=axes))))


def best_time(run, reps):
    times, result = [], None
    for _ in range(reps):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rates", type=int, nargs="+", default=[22050, 44100])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import librosa
    import tensorflow as tf

    from keras_sep.ops.griffin_lim import griffin_lim

    spec = tf.TensorSpec((None, None, FFT // 2 + 1, 1), tf.float32)
    variants = {
        jit: tf.function(
            lambda m, phase: griffin_lim(m, args.iterations, 0.99, phase, FFT, HOP),
            input_signature=[spec, spec], jit_compile=jit,
        )
        for jit in (False, True)
    }
    rows = []
    for rate in args.rates:
        signals = clips(rate, args.seconds, args.batch)
        magnitudes = np.abs(librosa.stft(signals, n_fft=FFT, hop_length=HOP)).astype(np.float32)  # (batch, bins, frames)
        for count in (1, args.batch):
            reference = magnitudes[:count]
            # One clip after the other (faster per clip than librosa's
            # multichannel input, which runs out of cache), each with its
            # own draw of random_state=0.
            theirs = lambda: np.stack([  # noqa: E731
                librosa.griffinlim(
                    clip, n_iter=args.iterations, hop_length=HOP, n_fft=FFT, momentum=0.99,
                    init="random", random_state=0,
                )
                for clip in reference
            ])
            # librosa's draw for random_state=0 (2π · RandomState(0).random(shape)), per clip.
            phase = np.stack([2 * np.pi * np.random.RandomState(seed=0).random(size=clip.shape) for clip in reference])
            channels_last = np.ascontiguousarray(reference.transpose(0, 2, 1)[..., None])
            phase = np.ascontiguousarray(phase.transpose(0, 2, 1)[..., None])
            phase = phase.astype(np.float32)
            timed = {}
            for jit, ours in variants.items():
                ours(channels_last, phase)  # trace and compile
                timed[jit] = best_time(lambda: ours(channels_last, phase).numpy(), args.reps)
            jit = min(timed, key=lambda k: timed[k][0])
            (ours_time, ours_out), other = timed[jit], timed[not jit][0]
            their_time, their_out = best_time(theirs, args.reps if count == 1 else 1)
            rows.append((rate, count, their_time / count, ours_time / count, "XLA" if jit else "graph", other / count,
                         convergence(their_out, reference),
                         convergence(ours_out[..., 0], reference)))
            print(rows[-1], file=sys.stderr)
    command = "python benchmarks/griffin_lim.py " + " ".join(sys.argv[1:])
    print(f"`{command.strip()}` on {machine()}, {datetime.date.today().isoformat()}, "
          f"TensorFlow {tf.__version__}, librosa {librosa.__version__}; {args.seconds:g} s mono clips, "
          f"{args.iterations} iterations, n_fft {FFT} / hop {HOP}, momentum 0.99, best of {args.reps}\n")
    print("| rate | clips per call | librosa s/clip | keras_sep s/clip | speed-up | (other mode) | SC librosa | SC keras_sep |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate, count, theirs, mine, mode, other, sc_theirs, sc_mine in rows:
        print(f"| {rate} | {count} | {theirs:.2f} | {mine:.2f} ({mode}) | {theirs / mine:.1f}× | {other:.2f} "
              f"| {sc_theirs:.4f} | {sc_mine:.4f} |")


if __name__ == "__main__":
    main()
