"""Open-Unmix separation speed and memory: keras_sep against PyTorch openunmix.Separator.

    scripts/openunmix_peer_setup.sh                       # once: /tmp/openunmix_peer
    python benchmarks/separate_speed_umx.py [--lengths 12 60] [--reps 2] [--file-minutes 10]
        [--peer /tmp/openunmix_peer] [--hidden-size 512]

No Open-Unmix weights are downloaded: the PyTorch side draws four random
umxhq-sized networks (2049 bins, stereo, max_bin 1487, ``--hidden-size``
512, a 3-layer BLSTM; the cost does not depend on the values) and saves
them as upstream's ``<target>-<sha8>.pth`` state dicts, which both sides
load (keras_sep through its PyTorch-free reader). Both separate with one EM
iteration of the Wiener filter over 300-frame windows (umxhq's settings).
Every (system, mode, length) runs in a fresh process so that its peak RSS is
its own, timed as the median of ``--reps`` runs after a warm-up. Modes:

  torch        openunmix 1.3.0 ``Separator`` (torch 2.13.0, CPU, eval,
               ``no_grad``) on the whole array;
  call         keras_sep ``OpenUnmixSeparator`` on the whole array (the
               same signal path as upstream: its output should match);
  separate     ``keras_sep.Separator.separate()``: streamed overlapping
               chunks of 2102 frames (about 49 s; the BLSTM sees one chunk),
               the networks run by their inference plan
               (``keras_sep.inference.open_unmix``);
  separate-keras  the same with ``fast=False``: the Keras layers;
  file         ``Separator.separate_to_file()``: WAV to four WAVs, streamed
               (its peak RSS should not grow with length); timed once.

torch runs once per thread count (up to the CPU count; OpenMP's waiting
threads spin, which on a busy machine can make more threads slower) and
keras_sep's speed-up is over the fastest of them. The SNR column compares
each keras_sep output with PyTorch's (the fastest run's) on the same input,
the minimum over the four stems. Without the peer environment the script
says so and stops.
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from separate_speed import snr_db, tiled  # noqa: E402  (the 2-stem benchmark's input and SNR)

RATE = 44100
TARGETS = ("vocals", "drums", "bass", "other")
WIENER = dict(niter=1, wiener_win_len=300)


CPU_TIMES = []  # the process's CPU seconds (all threads) of each timed run


def timed(run, reps):
    out = run()  # warm-up: builds and traces
    times = []
    for _ in range(reps):
        start, cpu = time.perf_counter(), time.process_time()
        out = run()
        times.append(time.perf_counter() - start)
        CPU_TIMES.append(time.process_time() - cpu)
    return out, float(np.median(times)) if times else float("nan")


def _openunmix():
    # openunmix imports torchaudio at module level for its audio loading,
    # which is not used here; a stand-in module keeps torchaudio out.
    sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
    import torch
    from openunmix.model import OpenUnmix, Separator

    return torch, OpenUnmix, Separator


def weights_worker(args):
    """Random umxhq-sized networks saved as upstream's .pth files in ``args.save``."""
    import hashlib
    import io

    torch, OpenUnmix, _ = _openunmix()
    for k, target in enumerate(TARGETS):
        torch.manual_seed(100 + k)
        model = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=args.hidden_size, max_bin=1487)
        state = model.state_dict()
        with torch.no_grad():  # realistic input normalisation and BN statistics, not 0/1
            state["input_scale"].copy_(torch.rand_like(state["input_scale"]) * 0.5 + 0.05)
            state["input_mean"].copy_(-torch.rand_like(state["input_mean"]))
            for name, value in state.items():
                if name.endswith("running_var"):
                    value.copy_(torch.rand_like(value) + 0.5)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        payload = buffer.getvalue()
        name = f"{target}-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
        with open(os.path.join(args.save, name), "wb") as handle:
            handle.write(payload)
    return 0.0, 0


def weight_files(folder):
    names = {name.split("-")[0]: os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".pth")}
    return {t: names[t] for t in TARGETS}


def peer_worker(args):
    torch, OpenUnmix, Separator = _openunmix()
    torch.set_num_threads(args.threads)
    models = {}
    for target, path in weight_files(args.weights).items():
        model = OpenUnmix(nb_bins=2049, nb_channels=2, hidden_size=args.hidden_size, max_bin=1487)
        model.load_state_dict(torch.load(path, map_location="cpu"))
        models[target] = model.eval()
    separator = Separator(models, sample_rate=RATE, n_fft=4096, n_hop=1024, nb_channels=2, **WIENER).eval()
    wave = tiled(args.seconds)
    x = torch.from_numpy(wave.T.copy())[None]

    def run():
        with torch.no_grad():
            return separator(x)[0].numpy()

    out, median = timed(run, args.reps)
    np.savez(args.save, **{t: out[k].T for k, t in enumerate(TARGETS)})
    return median, len(wave)


def ours_worker(args):
    from keras_sep.checkpoints.open_unmix import open_unmix_from_pth
    from keras_sep.models import OpenUnmixSeparator
    from keras_sep.separation import Separator

    nets = {t: open_unmix_from_pth(path) for t, path in weight_files(args.weights).items()}
    model = OpenUnmixSeparator(nets, **WIENER)
    # separate: the inference plan (the default); separate-keras: the Keras layers.
    separator = Separator(model, progress=False, fast=args.worker != "separate-keras")
    if args.worker == "file":  # one run, tracing included: what a user waits for
        from keras_sep import audio

        start = time.perf_counter()
        separator.separate_to_file(args.input, args.save, overwrite=True)
        return time.perf_counter() - start, audio.info(args.input)[2]
    wave = tiled(args.seconds)
    if args.worker == "call":
        import tensorflow as tf

        call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        out, median = timed(lambda: {k: v.numpy()[0] for k, v in call(wave[None]).items()}, args.reps)
    else:
        out, median = timed(lambda: separator.separate(wave), args.reps)
    np.savez(args.save, **out)
    return median, len(wave)


def run_worker(python, args, mode, seconds, save, extra=()):
    command = [python, __file__, "--worker", mode, "--seconds", str(seconds), "--reps", str(args.reps),
               "--hidden-size", str(args.hidden_size), "--weights", args.weights, "--save", save, *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def peer_python(peer):
    """The peer's interpreter, or None (with the reason printed) when it cannot run openunmix."""
    python = os.path.join(peer, "venv", "bin", "python")
    if not os.path.exists(python):
        print(f"skipped: no PyTorch Open-Unmix peer at {peer} (run scripts/openunmix_peer_setup.sh {peer})")
        return None
    probe = "import sys, types; sys.modules['torchaudio'] = types.ModuleType('torchaudio'); import openunmix.model"
    if subprocess.run([python, "-c", probe], capture_output=True).returncode:
        print(f"skipped: {python} cannot import torch and openunmix (rerun scripts/openunmix_peer_setup.sh {peer})")
        return None
    return python


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[12, 60])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--file-minutes", type=float, nargs="*", default=[1, 10],
                        help="lengths of the file → file runs (peak RSS should stay flat)")
    parser.add_argument("--hidden-size", type=int, default=512)
    parser.add_argument("--peer", default="/tmp/openunmix_peer")
    parser.add_argument("--torch-threads", type=int, nargs="*",
                        help="torch thread counts to try (default: 1 to the CPU count)")
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work = {"weights": weights_worker, "torch": peer_worker}.get(args.worker, ours_worker)
        median, frames = work(args)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cpu = float(np.median(CPU_TIMES)) if CPU_TIMES else float("nan")
        print(json.dumps({"median_s": round(median, 3), "cpu_s": round(cpu, 3), "audio_s": round(frames / RATE, 2),
                          "peak_rss_mb": round(rss)}))
        return

    python = peer_python(args.peer)
    if python is None:
        return
    with open("/proc/cpuinfo") as handle:
        cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    print(f"{cpu}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}, load average "
          + " ".join(f"{v:.1f}" for v in os.getloadavg()))
    scratch = tempfile.mkdtemp()
    try:
        compare(python, args, scratch)
    finally:  # weights, inputs and stems: hundreds of MB
        shutil.rmtree(scratch, ignore_errors=True)


def compare(python, args, scratch):
    import soundfile

    args.weights = os.path.join(scratch, "weights")
    os.makedirs(args.weights)
    run_worker(python, args, "weights", 0, args.weights)
    print("| system | mode | audio s | time s | CPU s | × real time | × PyTorch | peak RSS MB "
          "| SNR vs PyTorch (min over stems, dB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for seconds in args.lengths:
        # torch's OpenMP threads spin while they wait: on a busy machine one
        # thread can beat all of them, so each count is tried and the faster
        # is what keras_sep is compared with.
        peers = []
        for threads in args.torch_threads or range(1, os.cpu_count() + 1):
            peer_save = os.path.join(scratch, f"torch_{seconds}_{threads}.npz")
            peer = run_worker(python, args, "torch", seconds, peer_save, ("--threads", str(threads)))
            print(f"| openunmix 1.3.0 (torch 2.13.0) | torch, {threads} thread(s) | {peer['audio_s']} "
                  f"| {peer['median_s']} | {peer['cpu_s']} | {peer['audio_s'] / peer['median_s']:.1f} |  "
                  f"| {peer['peak_rss_mb']} |  |",
                  flush=True)
            peers.append((peer["median_s"], peer_save, peer))
        _, peer_save, peer = min(peers, key=lambda p: p[0])
        reference = np.load(peer_save)
        for mode in ("call", "separate-keras", "separate"):
            save = os.path.join(scratch, f"{mode}_{seconds}.npz")
            ours = run_worker(sys.executable, args, mode, seconds, save)
            stems = np.load(save)
            snr = min(snr_db(reference[t], stems[t]) for t in TARGETS)
            print(f"| keras_sep | {mode} | {ours['audio_s']} | {ours['median_s']} | {ours['cpu_s']} "
                  f"| {ours['audio_s'] / ours['median_s']:.1f} "
                  f"| {peer['median_s'] / ours['median_s']:.2f} | {ours['peak_rss_mb']} | {snr:.1f} |", flush=True)
    for minutes in args.file_minutes:
        wav = os.path.join(scratch, f"in_{minutes}.wav")
        soundfile.write(wav, tiled(60 * minutes), RATE, subtype="PCM_16")
        stems = os.path.join(scratch, f"stems_{minutes}")
        ours = run_worker(sys.executable, args, "file", 60 * minutes, stems, ("--input", wav))
        print(f"| keras_sep | file | {ours['audio_s']} | {ours['median_s']} |  | {ours['audio_s'] / ours['median_s']:.1f} "
              f"|  | {ours['peak_rss_mb']} |  |", flush=True)
        os.remove(wav)


if __name__ == "__main__":
    main()
