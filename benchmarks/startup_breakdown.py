"""Where the time of a fresh `keras-sep separate` process goes, per engine.

    python benchmarks/startup_breakdown.py [--lengths 10.9 180] [--reps 3]
        [--engines tensorflow tensorflow-keras tensorflow-uncached litert]

Each run is a fresh `python -c` process that calls `keras_sep.cli.main(["separate",
WAV, "--engine", E, ...])` with timers wrapped around its phases:

* imports: interpreter start and `import keras_sep.cli`, then TensorFlow and
  Keras (`start_tensorflow`) or the `ai-edge-litert` runtime;
* model load: `Separator.from_preset` (weights from the cache), loading the
  saved plan (the wait for its check, then ``tf.saved_model.load``), or
  reading the cached LiteRT export into an interpreter;
* plan: building the inference plan (reading the model, looking up or
  timing the operator forms, the probe check);
* first chunk: the first network call (tracing, XLA compilation, and one
  chunk's work), steady state: all later calls;
* writing: the stem writers; other: reading and decoding the input,
  chunking and overlap-adding, the rest of the command.

``tensorflow`` is ``--engine tensorflow`` as it runs once the cache holds
the saved plan (:mod:`keras_sep._cli_plans`) and its XLA code;
``tensorflow-keras`` the same without the saved plan
(``KERAS_SEP_PLAN_CACHE=0``): Keras imported, the ``.keras`` model loaded,
its inference plan made and traced; ``tensorflow-uncached`` also without
the persistent XLA cache (``KERAS_SEP_XLA_CACHE=0``): every process
compiles its XLA parts again, as one does on a machine's first run.

Wall seconds are the minimum over ``--reps`` runs (the machine is shared:
the minimum is the run least disturbed by others); CPU seconds (user +
system of all threads) are given beside them. The untimed first run of
each engine makes what the cache keeps (the LiteRT export, the operator
form timings, the probe record, the saved plan; a second one the XLA code
of a process that finds them), so the table is that of the third and
later runs.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = "/work/shared/data/spleeter_2stems/audio_example.mp3"
PHASES = ("imports", "model load", "plan", "first chunk", "steady state", "writing", "other")

# Runs in the child: wraps the phases, runs the command, prints the timings as JSON.
CHILD = r"""
import json, os, sys, time, resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
t = {"wall": {}, "cpu": {}}
def add(name, wall, cpu_s):
    t["wall"][name] = t["wall"].get(name, 0.0) + wall
    t["cpu"][name] = t["cpu"].get(name, 0.0) + cpu_s
def timed(name, fn):
    def wrapper(*a, **k):
        w, c = time.perf_counter(), cpu()
        try:
            return fn(*a, **k)
        finally:
            add(name, time.perf_counter() - w, cpu() - c)
    return wrapper
start_wall = time.perf_counter()
from keras_sep import cli
from keras_sep import _cli_process, _cli_engine, _cli_plans, _cli_separate
from keras_sep.separation import engine, outputs, pipelines, saved_plan
add("imports", time.perf_counter() - start_wall, cpu())
ENGINE = sys.argv[2]
if ENGINE == "litert":
    w, c = time.perf_counter(), cpu()
    from ai_edge_litert.interpreter import Interpreter  # what the runner imports first
    add("imports", time.perf_counter() - w, cpu() - c)
_cli_process.start_tensorflow = timed("imports", _cli_process.start_tensorflow)
_cli_separate._load_separator = timed("model load", _cli_separate._load_separator)
_cli_engine._started = timed("model load", _cli_engine._started)
# The saved plan: waiting for its check, then tf.saved_model.load.
_cli_plans.Lookup.result = timed("model load", _cli_plans.Lookup.result)
saved_plan.SavedPlanSeparator.__init__ = timed("model load", saved_plan.SavedPlanSeparator.__init__)
pipelines.Pipelines.network = timed("plan", pipelines.Pipelines.network)
calls = []
init = engine.ChunkStream.__init__
def chunk_init(self, geometry, overlap, batch_size, run):
    def timed_run(*a):
        w, c = time.perf_counter(), cpu()
        plan_w, plan_c = t["wall"].get("plan", 0.0), t["cpu"].get("plan", 0.0)
        out = run(*a)
        # the plan is made inside the first call: count it once, not twice
        calls.append((time.perf_counter() - w - (t["wall"].get("plan", 0.0) - plan_w),
                      cpu() - c - (t["cpu"].get("plan", 0.0) - plan_c)))
        return out
    init(self, geometry, overlap, batch_size, timed_run)
engine.ChunkStream.__init__ = chunk_init
outputs.StemWriters.write = timed("writing", outputs.StemWriters.write)
outputs.StemWriters.__exit__ = timed("writing", outputs.StemWriters.__exit__)
code = cli.main(["separate", sys.argv[1], "--engine", ENGINE, "-o", sys.argv[3], "--overwrite"])
if code:
    sys.exit(code)
if calls:
    add("first chunk", *calls[0])
    for w, c in calls[1:]:
        add("steady state", w, c)
t["chunks"] = len(calls)
t["total"] = {"wall": time.perf_counter() - start_wall, "cpu": cpu()}
print("TIMINGS " + json.dumps(t))
"""


def example(source, seconds, folder):
    """``source`` (decoded), tiled or cut to ``seconds``, as a float WAV."""
    wave, rate = sf.read(source, dtype="float32", always_2d=True)
    n = int(round(seconds * rate))
    path = os.path.join(folder, f"example_{seconds:g}s.wav")
    sf.write(path, np.tile(wave, (n // len(wave) + 1, 1))[:n], rate, subtype="FLOAT")
    return path


def run(path, engine, output):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if engine == "tensorflow-keras":
        engine, env["KERAS_SEP_PLAN_CACHE"] = "tensorflow", "0"
    elif engine == "tensorflow-uncached":
        engine, env["KERAS_SEP_PLAN_CACHE"], env["KERAS_SEP_XLA_CACHE"] = "tensorflow", "0", "0"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, path, engine, output], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("TIMINGS ")), None)
    if done.returncode or line is None:
        sys.exit(f"{engine} on {path} failed:\n{done.stderr[-3000:]}")
    timings = json.loads(line[len("TIMINGS "):])
    for kind in ("wall", "cpu"):
        known = sum(v for k, v in timings[kind].items())
        timings[kind]["other"] = timings["total"][kind] - known
    timings["process"] = wall
    return timings


def table(results, lengths, engines):
    head = "| phase | " + " | ".join(f"{e} {s:g} s: wall / CPU" for s in lengths for e in engines) + " |"
    rows = [head, "|" + "---|" * (1 + len(lengths) * len(engines))]
    for phase in PHASES + ("process total",):
        cells = []
        for s in lengths:
            for e in engines:
                runs = results[(s, e)]
                if phase == "process total":
                    wall, cpu_s = min(r["process"] for r in runs), min(r["total"]["cpu"] for r in runs)
                else:
                    wall = min(r["wall"].get(phase, 0.0) for r in runs)
                    cpu_s = min(r["cpu"].get(phase, 0.0) for r in runs)
                cells.append(f"{wall:.2f} / {cpu_s:.2f}")
        rows.append(f"| {phase} | " + " | ".join(cells) + " |")
    chunks = " ".join(f"{e} {s:g} s: {results[(s, e)][0]['chunks']}" for s in lengths for e in engines)
    return "\n".join(rows) + f"\n\nnetwork calls: {chunks}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[10.9, 180.0])
    parser.add_argument("--engines", nargs="+", default=["tensorflow", "tensorflow-keras", "tensorflow-uncached", "litert"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--example", default=EXAMPLE, help="the audio to tile (default: Spleeter's 10.9 s example)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="startup_breakdown_")
    paths = {s: example(args.example, s, folder) for s in args.lengths}
    out = os.path.join(folder, "out")
    for engine in args.engines:  # untimed: fill the caches (see the docstring)
        for _ in range(2):
            run(paths[args.lengths[0]], engine, out)
    results = {(s, e): [] for s in args.lengths for e in args.engines}
    for _ in range(args.reps):  # interleaved, so a busy spell of the machine hits all
        for s in args.lengths:
            for e in args.engines:
                results[(s, e)].append(run(paths[s], e, out))
    print(f"load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} / {os.getloadavg()[2]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(table(results, args.lengths, args.engines))


if __name__ == "__main__":
    main()
