"""Rebuild a recording from its magnitude spectrogram alone: Griffin–Lim.

The phase of the STFT is thrown away, then estimated again from the
magnitude with the classic Griffin–Lim algorithm (momentum 0), the fast one
(momentum 0.99, Perraudin et al. 2013), both keras_sep's
(:func:`keras_sep.ops.griffin_lim`), and librosa's fast ``griffinlim`` at the
same number of iterations, all from the same random phase family. It
writes each reconstruction as a WAV, ``convergence.png`` (spectral
convergence ``‖|STFT(x̂)| − A‖ / ‖A‖`` against iterations, from keras_sep's
per-iteration output, librosa's end point as a marker) and
``spectrograms.png`` (original and reconstructions), and prints the final
spectral convergence of each.

    python examples/phase_reconstruction.py                       # Spleeter's example song, 10 s
    python examples/phase_reconstruction.py song.flac --seconds 20 --iterations 200 --out /tmp/gl
"""
import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "shared", "data", "spleeter_2stems", "audio_example.mp3")
FFT, HOP, RATE = 2048, 512, 22050


def reconstruct(magnitude, iterations, length):
    """{name: (waveform, convergence per iteration or None)} for the three methods."""
    import librosa
    import numpy as np
    import tensorflow as tf

    from keras_sep.ops.griffin_lim import griffin_lim

    batch = magnitude.T[None, :, :, None]  # (1, frames, bins, 1)
    results = {}
    for name, momentum in (("classic", 0.0), ("fast", 0.99)):
        run = tf.function(
            lambda m, momentum=momentum: griffin_lim(
                m, iterations, momentum, "random", FFT, HOP, length=length, seed=0, return_convergence=True
            ),
            jit_compile=True,
        )
        waveform, curve = run(batch)
        results[name] = (waveform.numpy()[0, :, 0], curve.numpy()[0])
    waveform = librosa.griffinlim(magnitude, n_iter=iterations, hop_length=HOP, n_fft=FFT, momentum=0.99,
                                  random_state=0, length=length)
    results["librosa"] = (waveform.astype(np.float32), None)
    return results


def convergence(waveform, magnitude):
    import librosa
    import numpy as np

    rebuilt = np.abs(librosa.stft(waveform, n_fft=FFT, hop_length=HOP))
    return float(np.linalg.norm(rebuilt - magnitude) / np.linalg.norm(magnitude))


def plot(original, results, magnitude, iterations, out):
    import matplotlib

    matplotlib.use("Agg")
    import librosa
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axis = plt.subplots(figsize=(7, 4))
    for name, (waveform, curve) in results.items():
        if curve is not None:
            # curve[k]: the signal after k iterations; the returned one ends it.
            points = np.append(curve, convergence(waveform, magnitude))
            axis.semilogy(np.arange(len(points)), points, label=f"keras_sep {name}")
        else:
            axis.semilogy([iterations], [convergence(waveform, magnitude)], "k*", markersize=10, label=f"{name} (fast, end)")
    axis.set_xlabel("iterations")
    axis.set_ylabel("spectral convergence")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(os.path.join(out, "convergence.png"), dpi=120)
    plt.close(figure)

    signals = {"original": original, **{name: waveform for name, (waveform, _) in results.items()}}
    figure, axes = plt.subplots(len(signals), 1, figsize=(8, 2.2 * len(signals)), sharex=True)
    for axis, (name, waveform) in zip(axes, signals.items()):
        decibels = librosa.amplitude_to_db(np.abs(librosa.stft(waveform, n_fft=FFT, hop_length=HOP)), ref=np.max)
        axis.imshow(decibels, origin="lower", aspect="auto", vmin=-80, vmax=0, cmap="magma",
                    extent=[0, len(waveform) / RATE, 0, RATE / 2000])
        axis.set_title(name)
        axis.set_ylabel("kHz")
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    figure.savefig(os.path.join(out, "spectrograms.png"), dpi=100)
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", nargs="?", default=EXAMPLE, help="an audio file (default: Spleeter's example song)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--out", default="phase_reconstruction")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import librosa
    import numpy as np

    from keras_sep import audio

    waveform, _ = audio.load(args.input, sample_rate=RATE, duration=args.seconds)
    original = np.asarray(waveform, np.float32).mean(axis=1)
    magnitude = np.abs(librosa.stft(original, n_fft=FFT, hop_length=HOP))  # the phase is dropped here
    results = reconstruct(magnitude, args.iterations, len(original))
    os.makedirs(args.out, exist_ok=True)
    audio.save(os.path.join(args.out, "original.wav"), original[:, None], RATE)
    print(f"{args.input}: {len(original) / RATE:.1f} s at {RATE} Hz, {args.iterations} iterations")
    for name, (estimate, _) in results.items():
        audio.save(os.path.join(args.out, f"{name}.wav"), estimate[:, None], RATE)
        print(f"  {name:8s} spectral convergence {convergence(estimate, magnitude):.4f}")
    plot(original, results, magnitude, args.iterations, args.out)
    print(f"WAVs, convergence.png and spectrograms.png in {args.out}")


if __name__ == "__main__":
    main()
