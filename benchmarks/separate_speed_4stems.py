"""4-stem separation speed and memory: keras_sep against real Spleeter's 4-stem graph.

    /tmp/spleeter_peer/venv/bin/python scripts/make_spleeter45_fixtures.py --checkpoint-dir /tmp/spleeter45
    python benchmarks/separate_speed_4stems.py --weights /tmp/spleeter45 [--lengths 11.9 60] [--reps 3]
        [--peer /tmp/spleeter_peer]

Deezer's 4-stem checkpoint is not downloadable here, so both sides load the
same seeded random checkpoint (Spleeter's own variables; the cost of the
network does not depend on the values). Every (system, mode, length) runs in
a fresh process so that peak RSS is its own. Modes:

  spleeter graph   Spleeter 2.4.2's 4-stem graph (EstimatorSpecBuilder, weights
                   restored once), ``session.run`` on the array;
  separate         keras_sep ``Separator.separate()`` on the array, Spleeter
                   chunking (the same output as Spleeter) and default overlap;
  file             ``Separator.separate_to_file()``: WAV to four WAVs,
                   streamed (its peak RSS should not grow with length).

All are timed after a warm-up run (median wall time, and median CPU time of
the process over all its threads, which a machine shared with other work
disturbs less); the SNR of keras_sep's stems against Spleeter's (same run)
is printed.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 44100
sys.path.insert(0, HERE)
from separate_speed import snr_db, tiled  # noqa: E402  (the 2-stem benchmark's input and SNR)
INSTRUMENTS = ("vocals", "drums", "bass", "other")


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(run, reps):
    """``(output, median wall seconds, median CPU seconds)`` of ``reps`` runs after a warm-up."""
    out = run()  # warm-up: builds and traces
    times, cpu = [], []
    for _ in range(reps):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        out = run()
        times.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
    return out, float(np.median(times)), float(np.median(cpu))


def peer_worker(args):
    """Spleeter's 4-stem graph with the checkpoint in ``args.weights``."""
    import tensorflow as tf
    from spleeter.model import EstimatorSpecBuilder
    from spleeter.utils.configuration import load_configuration

    wave = tiled(args.seconds)
    params = dict(load_configuration("spleeter:4stems"), MWF=False)
    graph = tf.Graph()
    with graph.as_default():
        placeholder = tf.compat.v1.placeholder(tf.float32, shape=(None, 2), name="waveform")
        outputs = EstimatorSpecBuilder({"waveform": placeholder}, params).outputs
        session = tf.compat.v1.Session(graph=graph)
        tf.compat.v1.train.Saver().restore(session, os.path.join(args.weights, "4stems", "model"))
    out, median, cpu = timed(lambda: session.run(outputs, {placeholder: wave}), args.reps)
    np.savez(args.save, **{k: np.asarray(out[k], np.float32) for k in INSTRUMENTS})
    return median, cpu, len(wave)


def ours_worker(args):
    from keras_sep import pretrained
    from keras_sep.separation import Separator

    model = pretrained.load_model("spleeter:4stems", local_dir=args.weights)
    if args.worker == "tune":
        # This machine's operator forms and batch size, timed once and
        # cached, so that no measured process times them.
        for chunking in ("overlap", "spleeter"):
            Separator(model, chunking=chunking, progress=False).tune()
        return 0.0, 0.0, 0
    if args.worker == "file":
        folder = tempfile.mkdtemp()
        sep = Separator(model, progress=False)
        _, median, cpu = timed(lambda: sep.separate_to_file(args.input, folder, overwrite=True), args.reps)
        from keras_sep import audio

        return median, cpu, audio.info(args.input)[2]
    wave = tiled(args.seconds)
    sep = Separator(model, chunking="spleeter" if args.worker == "separate-spleeter" else "overlap", progress=False)
    out, median, cpu = timed(lambda: sep.separate(wave), args.reps)
    np.savez(args.save, **out)
    return median, cpu, len(wave)


def run_worker(python, args, mode, seconds, save, extra=()):
    command = [python, __file__, "--worker", mode, "--seconds", str(seconds), "--reps", str(args.reps),
               "--weights", args.weights, "--save", save, *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="folder with 4stems/model.* (Spleeter's layout)")
    parser.add_argument("--lengths", type=float, nargs="+", default=[11.9, 60])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peer", default="/tmp/spleeter_peer")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        median, cpu, frames = (peer_worker if args.worker == "peer" else ours_worker)(args)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"median_s": round(median, 3), "cpu_s": round(cpu, 3), "audio_s": round(frames / RATE, 2),
                          "peak_rss_mb": round(rss)}))
        return

    with open("/proc/cpuinfo") as handle:
        cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    print(f"{cpu}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}")
    print("| system | mode | audio s | time s | × real time | × Spleeter graph | CPU s | × Spleeter graph (CPU) "
          "| peak RSS MB | SNR vs Spleeter (min over stems, dB) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    scratch = tempfile.mkdtemp()
    run_worker(sys.executable, args, "tune", 0, os.path.join(scratch, "tune.npz"))
    for seconds in args.lengths:
        peer_save = os.path.join(scratch, f"peer_{seconds}.npz")
        peer = run_worker(os.path.join(args.peer, "venv", "bin", "python"), args, "peer", seconds, peer_save)
        print(f"| Spleeter 2.4.2 | graph | {peer['audio_s']} | {peer['median_s']} | {peer['audio_s'] / peer['median_s']:.1f} "
              f"|  | {peer['cpu_s']} |  | {peer['peak_rss_mb']} |  |", flush=True)
        reference = np.load(peer_save)
        wav = os.path.join(scratch, f"in_{seconds}.wav")
        import soundfile

        soundfile.write(wav, tiled(seconds), RATE, subtype="FLOAT")
        for mode in ("separate-spleeter", "separate", "file"):
            save = os.path.join(scratch, f"{mode}_{seconds}.npz")
            ours = run_worker(sys.executable, args, mode, seconds, save, ("--input", wav))
            snr = ""
            if mode != "file":
                stems = np.load(save)
                snr = f"{min(snr_db(reference[k], stems[k]) for k in INSTRUMENTS):.1f}"
            print(f"| keras_sep | {mode} | {ours['audio_s']} | {ours['median_s']} | {ours['audio_s'] / ours['median_s']:.1f} "
                  f"| {peer['median_s'] / ours['median_s']:.2f} | {ours['cpu_s']} | {peer['cpu_s'] / ours['cpu_s']:.2f} "
                  f"| {ours['peak_rss_mb']} | {snr} |", flush=True)


if __name__ == "__main__":
    main()
