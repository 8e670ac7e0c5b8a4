"""keras_sep turns on TensorFlow's BFC CPU allocator unless told otherwise:
buffers over 32 MB (a chunk's spectra, its inverse-FFT frames) are then
reused between calls instead of page-faulted in afresh from a new mmap."""
import json
import os
import subprocess
import sys

from keras_sep.inference import autotune

# Runs in a fresh process: the allocator is fixed by TensorFlow's first op.
# Prints the variable as keras_sep left it and the page faults per call of
# an op whose 33.5 MB output is freed and allocated again every call.
PROBE = r"""
import json, os, resource
import keras_sep
import tensorflow as tf

run = tf.function(lambda x: tf.signal.irfft(x))
spectra = tf.complex(tf.random.normal((2048, 2049)), tf.random.normal((2048, 2049)))
for _ in range(3):
    run(spectra).numpy()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
calls = 5
for _ in range(calls):
    run(spectra).numpy()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls
print(json.dumps({"bfc": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC"), "faults": faults}))
"""
OUTPUT_PAGES = 2048 * 4096 * 4 // 4096  # 4 KiB pages of one call's output


def probe(**env):
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    environ.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=environ, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_turns_on_the_bfc_allocator_and_large_buffers_are_reused():
    result = probe()
    assert result["bfc"] == "true"
    # TensorFlow's default allocator maps every such buffer afresh: one
    # fault per 4 KiB page per call (8192 here), unless the kernel hands
    # out huge pages. With BFC the pages stay mapped between calls.
    assert result["faults"] < OUTPUT_PAGES / 10, result


def test_an_explicit_setting_is_kept():
    assert probe(TF_CPU_ALLOCATOR_USE_BFC="false")["bfc"] == "false"


def test_the_allocator_is_part_of_the_tuning_key(monkeypatch):
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "false")
    off = autotune.table_path()
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "true")
    assert autotune.machine_key()["cpu_allocator_bfc"] == "true"
    assert autotune.table_path() != off
