"""Separation speed and memory: keras_sep against real Spleeter, same machine, same run.

    python benchmarks/separate_speed.py [--lengths 10.9 60 180 600] [--reps 3]   # ×5 reps at 10.9 s
        [--peer DIR]   # Spleeter peer made by ../shared/tools/spleeter_peer/setup.sh

Every (system, length) runs in a fresh process so peak RSS is per length.
keras_sep is timed these ways, model loaded and warmed up first, decoding
excluded:
  network-keras  the U-Nets alone on the chunks of the audio, as Keras layers
            (what Spleeter's "graph" mode mostly measures), also as GFLOP/s;
  network   the same with the inference plan the Separator uses
            (keras_sep.inference.inference_plan(), its operator forms timed
            on this machine);
  separate  Separator.separate() on the in-memory array (default overlap
            chunking and Spleeter chunking);
  file      Separator.separate_to_file(): WAV on disk → stems on disk,
            streamed (its peak RSS should not grow with length);
  network-bf16, separate-bf16, separate-spleeter-bf16
            (not in the default set) the same with precision="bfloat16":
            convolutions in bfloat16, for processors with bfloat16 units;
  cli       (not in the default set) `keras-sep separate` against
            `spleeter separate` on the same WAV, wall time including
            start-up, model loading and writing: what a user waits for
            (keras-sep after two untimed runs, which leave in its cache
            what any earlier runs on the machine would).
Spleeter is timed by ../shared/tools/spleeter_peer/time_spleeter.py
(--mode graph). Where the peer saved its stems, the SNR of keras_sep's
Spleeter-chunking and overlap outputs against them is printed too.

keras_sep runs with TensorFlow's BFC CPU allocator (it sets
TF_CPU_ALLOCATOR_USE_BFC unless the variable is set already); Spleeter runs
with TensorFlow's default allocator, as it ships, or with BFC as well with
--peer-bfc.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
INPUT = os.path.join(SHARED, "data", "spleeter_2stems", "input_waveform.npy")
PEER_SCRIPT = os.path.join(SHARED, "tools", "spleeter_peer", "time_spleeter.py")
RATE = 44100


def tiled(seconds):
    wave = np.load(INPUT).astype(np.float32)
    n = int(round(seconds * RATE))
    return np.ascontiguousarray(np.tile(wave, (n // len(wave) + 1, 1))[:n])


def worker(args):
    """One keras_sep measurement in this process; prints one JSON line."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from keras_sep import pretrained
    from keras_sep.inference import inference_plan
    from keras_sep.separation import Separator

    model = pretrained.load_model("spleeter:2stems")
    if args.mode == "file":
        # The parent wrote the WAV: this process never holds the whole signal,
        # so its peak RSS is what streaming file → file costs.
        source = args.input
        from keras_sep import audio

        frames = audio.info(source)[2]
        folder = tempfile.mkdtemp()
    else:
        wave = tiled(args.seconds)
        frames = len(wave)
    result = {"system": "keras_sep", "mode": args.mode, "audio_s": round(frames / RATE, 3)}

    batching = {"batch_size": args.batch_size} if args.batch_size else {}
    bf16 = args.mode.endswith("-bf16")
    mode = args.mode[: -len("-bf16")] if bf16 else args.mode
    precision = "bfloat16" if bf16 else "float32"
    if mode in ("network", "network-keras"):
        # The chunks of this audio, one per call as the Separator feeds them.
        chunks = model.num_chunks(frames, 0)
        batch = args.batch_size or 1
        x = tf.random.uniform((batch, model.chunk_frames, model.spectrogram_model.bins, 2))
        if mode == "network":
            # Tuned for these chunks, as the Separator's (cached per machine).
            plan = inference_plan(model.spectrogram_model, tune_input_shape=tuple(x.shape), compute_dtype=precision)
            net = tf.function(plan, autograph=False)
        else:
            net = tf.function(lambda v: model.spectrogram_model(v, training=False))

        def run():
            for _ in range(-(-chunks // batch)):
                [t.numpy() for t in net(x).values()]
    elif mode in ("separate", "separate-spleeter"):
        chunking = "spleeter" if mode == "separate-spleeter" else "overlap"
        sep = Separator(model, chunking=chunking, progress=False, precision=precision, **batching)
        run = lambda: sep.separate(wave)  # noqa: E731
    else:
        sep = Separator(model, progress=False, **batching)
        run = lambda: sep.separate_to_file(source, folder, overwrite=True)  # noqa: E731

    out = run()  # warm-up: traces the graph
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - start)
    if args.save and isinstance(out, dict) and args.mode.startswith("separate"):
        np.savez(args.save, **out)
    median = float(np.median(times))
    result.update(
        median_s=round(median, 3),
        x_realtime=round(result["audio_s"] / median, 1),
        peak_rss_mb=round(peak_rss_kb() / 1024, 1),
    )
    if args.mode.startswith("network"):
        chunks = model.num_chunks(int(result["audio_s"] * RATE), 0)
        result["gflop_per_s"] = round(chunks * unet_gflop(model) / median, 1)
    print(json.dumps(result))


def peak_rss_kb():
    """This process's peak resident size since it started (VmHWM).

    Not ``getrusage().ru_maxrss``: Linux carries that across fork and exec,
    so a worker started by a parent holding a long signal would report the
    parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def unet_gflop(model):
    """GFLOP (2 × multiply-adds) of all convolutions for one chunk.

    Frames and bins are halved together at every stage, so a layer's
    frame count follows from its bin count."""
    import keras

    net = model.spectrogram_model
    total = 0
    for layer in net.layers:
        conv = getattr(layer, "conv", layer)
        if not isinstance(conv, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            continue
        width_in = layer.input.shape[2]
        positions_in = (model.chunk_frames * width_in / net.bins) * width_in
        kh, kw = conv.kernel.shape[:2]
        if isinstance(conv, keras.layers.Conv2DTranspose):
            cout, cin = conv.kernel.shape[2:]
            positions = positions_in  # every input position meets the whole kernel
        else:
            cin, cout = conv.kernel.shape[2:]
            positions = positions_in / np.prod(conv.strides)
        total += 2 * kh * kw * cin * cout * positions
    return total / 1e9


def machine_peak():
    """GFLOP/s of a large float32 matmul: a practical peak for this machine."""
    import tensorflow as tf

    a = tf.random.uniform((2048, 2048))
    f = tf.function(lambda x: tf.linalg.matmul(x, x))
    f(a).numpy()
    start = time.perf_counter()
    for _ in range(5):
        f(a).numpy()
    return 5 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9


def time_command(command, reps, env=None):
    """Wall seconds (median of ``reps``) and peak RSS of a whole command,
    start-up included; ``{"error": ...}`` if it fails."""
    times, peak_kb = [], 0
    for _ in range(reps):
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        times.append(time.perf_counter() - start)
        child.returncode = os.waitstatus_to_exitcode(status)
        stderr = child.stderr.read().decode(errors="replace")
        child.stderr.close()
        if child.returncode:
            return {"error": " | ".join(stderr.strip().splitlines()[-3:])}
        peak_kb = max(peak_kb, usage.ru_maxrss)  # this child's own peak (wait4)
    return {"median_s": round(float(np.median(times)), 3), "times_s": [round(t, 2) for t in times],
            "peak_rss_mb": round(peak_kb / 1024, 1)}


def peer_env(args):
    """The Spleeter peer's environment: its model, no GPU, and the CPU
    allocator asked for (TensorFlow's default unless --peer-bfc), whatever
    importing keras_sep has put into this process's environment."""
    env = dict(os.environ, MODEL_PATH=os.path.join(args.peer, "pretrained_models"), CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CPU_ALLOCATOR_USE_BFC", None)
    if args.peer_bfc:
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    return env


def run_json(command, env=None):
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": " | ".join(tail)}
    return json.loads(lines[-1])


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / np.sum((reference - estimate).astype(np.float64) ** 2))


def time_clis(args, seconds, wav, scratch, have_peer):
    """Both command lines on the same WAV, start-up and writing included
    (what a user waits for); at most 3 repetitions, they are slow."""
    reps = min(args.reps, 3)
    rows = []
    peer = None
    if have_peer:
        env = peer_env(args)
        command = [os.path.join(args.peer, "venv", "bin", "spleeter"), "separate", "-p", "spleeter:2stems",
                   "-o", os.path.join(scratch, "cli_peer"), wav]
        peer = time_command(command, reps, env)
        rows.append(("spleeter 2.4.2", "cli", seconds, _with_rate(peer, seconds)))
    command = [sys.executable, "-m", "keras_sep.cli", "separate", wav, "-o", os.path.join(scratch, "cli_ours"),
               "--overwrite"]
    # Untimed: what keras-sep keeps in its cache is in place, as after any
    # earlier runs (the first saves TensorFlow's plan, the second its XLA code).
    time_command(command, 2)
    ours = time_command(command, reps)
    if peer and "median_s" in peer and "median_s" in ours:
        ours["speedup_vs_spleeter_graph"] = round(peer["median_s"] / ours["median_s"], 2)
    rows.append(("keras_sep", "cli (× Spleeter's cli)", seconds, _with_rate(ours, seconds)))
    print(json.dumps({"seconds": seconds, "mode": "cli", "ours": ours, "peer": peer}), file=sys.stderr)
    return rows


def _with_rate(result, seconds):
    if "median_s" in result:
        result.update(audio_s=seconds, x_realtime=round(seconds / result["median_s"], 1))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=float, nargs="+", default=[10.9, 60, 180, 600])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peer", default=os.path.expanduser("~/.cache/spleeter_peer"))
    parser.add_argument("--modes", nargs="+", default=["network-keras", "network", "separate", "separate-spleeter", "file"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[0],
                        help="chunks per network call to compare (0: the Separator's default)")
    parser.add_argument("--peer-bfc", action="store_true",
                        help="run Spleeter with TensorFlow's BFC CPU allocator too (default: as it ships)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    peer_python = os.path.join(args.peer, "venv", "bin", "python")
    have_peer = os.path.exists(peer_python) and os.path.isdir(os.path.join(args.peer, "pretrained_models", "2stems"))
    print(f"machine: {os.cpu_count()} cores; practical peak (2048² matmul): {machine_peak():.0f} GFLOP/s")
    if not have_peer:
        print(f"Spleeter peer not found in {args.peer}: run ../shared/tools/spleeter_peer/setup.sh for the comparison")
    rows = []
    scratch = tempfile.mkdtemp()
    for seconds in args.lengths:
        # Short inputs take a fraction of a second: more repetitions keep
        # their medians out of the machine's noise.
        reps = args.reps * max(1, min(5, round(60 / seconds)))
        peer = None
        if have_peer:
            source = os.path.join(scratch, f"in_{seconds}.npy")
            np.save(source, tiled(seconds))
            save = os.path.join(scratch, f"peer_{seconds}")
            env = peer_env(args)
            peer = run_json([peer_python, PEER_SCRIPT, source, "--mode", "graph", "--reps", str(reps), "--save", save], env)
            os.remove(source)
            rows.append(("spleeter 2.4.2", "graph, BFC allocator" if args.peer_bfc else "graph", seconds, peer))
        wav = None
        if "file" in args.modes or "cli" in args.modes:
            from keras_sep import audio

            wav = os.path.join(scratch, f"in_{seconds}.wav")
            audio.save(wav, tiled(seconds), RATE)
        runs = [(mode, batch) for mode in args.modes for batch in (args.batch_sizes if mode not in ("cli", "network-keras") else [0])]
        for mode, batch in runs:
            if mode == "cli":
                rows.extend(time_clis(args, seconds, wav, scratch, have_peer))
                continue
            save = os.path.join(scratch, f"ours_{mode}_{batch}_{seconds}.npz")
            ours = run_json([sys.executable, __file__, "--worker", "--mode", mode, "--seconds", str(seconds),
                             "--reps", str(reps), "--save", save, "--batch-size", str(batch)] + (["--input", wav] if wav else []))
            if peer and "median_s" in peer and "median_s" in ours:
                ours["speedup_vs_spleeter_graph"] = round(peer["median_s"] / ours["median_s"], 2)
            if have_peer and os.path.exists(save) and os.path.exists(os.path.join(scratch, f"peer_{seconds}", "vocals.npy")):
                stems = np.load(save)
                ours["snr_db"] = {
                    name: round(float(snr_db(np.load(os.path.join(scratch, f"peer_{seconds}", f"{name}.npy")), stems[name])), 1)
                    for name in ("vocals", "accompaniment")
                }
            label = f"{mode}, batch {batch}" if batch else mode
            rows.append(("keras_sep", label, seconds, ours))
            print(json.dumps({"seconds": seconds, "mode": label, **ours}), file=sys.stderr)

    print()
    print("| system | mode | audio s | time s | × real time | peak RSS MB | × Spleeter graph | GFLOP/s "
          "| SNR vs Spleeter (voc/acc dB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for system, mode, seconds, r in rows:
        if "error" in r:
            print(f"| {system} | {mode} | {seconds} | error: {r['error'][:80]} |||||")
            continue
        snr = r.get("snr_db")
        snr = f"{snr['vocals']} / {snr['accompaniment']}" if snr else ""
        print(f"| {system} | {mode} | {r['audio_s']} | {r['median_s']} | {r['x_realtime']} | {r['peak_rss_mb']} | "
              f"{r.get('speedup_vs_spleeter_graph', '')} | {r.get('gflop_per_s', '')} | {snr} |")
    for label in dict.fromkeys(mode for _, mode, _, _ in rows if mode.startswith("file")):
        streamed = [r for _, mode, _, r in rows if mode == label and "peak_rss_mb" in r]
        if len(streamed) > 1:
            ratio = streamed[-1]["peak_rss_mb"] / streamed[0]["peak_rss_mb"]
            print(f"\n{label} → file peak RSS, {streamed[-1]['audio_s']} s vs {streamed[0]['audio_s']} s: "
                  f"{ratio:.2f}× (target ≤ 1.2×)")

if __name__ == "__main__":
    main()
