"""Would a cached SavedModel of the traced inference plan start faster than
building and tracing the plan? Times, in fresh processes, (a) the usual path:
`Separator.from_preset`, the plan, the first and second chunk; (b) the same
computation saved once with `tf.saved_model.save`, then `tf.saved_model.load`
and its first and second chunk.

    python benchmarks/plan_cache_lever.py [--model spleeter:2stems] [--reps 2]

Wall seconds and CPU seconds (user + system, all threads), minimum over reps.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time, resource
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF); return r.ru_utime + r.ru_stime
marks = []
def mark(name):
    marks.append((name, time.perf_counter(), cpu()))
mark("start")
from keras_sep import _cli_process
_cli_process.start_tensorflow(False)
import numpy as np
import tensorflow as tf
mark("imports")
what, model, folder = sys.argv[1:4]
if what == "load":
    module = tf.saved_model.load(folder)
    mark("model load")
    run = module.separate
    mark("plan")
    segment_length, chunk_frames = int(module.segment_length), int(module.chunk_frames)
else:
    from keras_sep.separation import Separator
    sep = Separator.from_preset(model)
    mark("model load")
    pipelines = sep._pipelines
    net = pipelines.network(1)
    mark("plan")
    m = sep.model
    segment_length, chunk_frames = m.segment_length, m.chunk_frames
    spec = [tf.TensorSpec((None, segment_length, m.channels), tf.float32), tf.TensorSpec((None, chunk_frames), tf.float32)]
    run = tf.function(lambda s, w: m.separate_segments(s, w, training=False, network=net, jit_compile=True),
                      input_signature=spec, autograph=False)
rng = np.random.default_rng(0)
s = rng.uniform(-0.5, 0.5, (1, segment_length, 2)).astype(np.float32)
w = np.ones((1, chunk_frames), np.float32)
{k: v.numpy() for k, v in run(s, w).items()}
mark("first chunk")
{k: v.numpy() for k, v in run(s, w).items()}
mark("second chunk")
if what == "save":
    module = tf.Module()
    module.separate = run
    module.segment_length = tf.Variable(segment_length)
    module.chunk_frames = tf.Variable(chunk_frames)
    tf.saved_model.save(module, folder)
    mark("save")
out = {n: (t - marks[i][1], c - marks[i][2]) for i, (n, t, c) in enumerate(marks[1:])}
print("TIMINGS " + json.dumps(out))
"""


def run(what, model, folder):
    done = subprocess.run([sys.executable, "-c", CHILD, what, model, folder], capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("TIMINGS ")), None)
    if done.returncode or line is None:
        sys.exit(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(line[8:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="spleeter:2stems")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    folder = os.path.join(tempfile.mkdtemp(), "plan")
    saved = run("save", args.model, folder)
    print(f"save once: {saved['save'][0]:.2f} s wall / {saved['save'][1]:.2f} s CPU")
    results = {"trace": [], "load": []}
    for _ in range(args.reps):
        for what in results:
            results[what].append(run("trace" if what == "trace" else "load", args.model, folder))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| phase | build and trace: wall / CPU s | SavedModel load: wall / CPU s |")
    print("|---|---|---|")
    for phase in ("imports", "model load", "plan", "first chunk", "second chunk"):
        cells = [f"{min(r[phase][0] for r in runs):.2f} / {min(r[phase][1] for r in runs):.2f}" for runs in results.values()]
        print(f"| {phase} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
