"""Importing keras_sep leaves the host process as it was; TensorFlow's BFC CPU
allocator is an opt-in (keras_sep.runtime.use_bfc_allocator) that the
keras-sep command takes."""
import json
import os
import subprocess
import sys

import pytest

from keras_sep import runtime
from keras_sep.inference import autotune

# Runs in a fresh process: TensorFlow picks its CPU allocator once, when it
# sets up its devices. argv[1] says when use_bfc_allocator() is called:
# "never", "first" (before importing TensorFlow), "imported" (after the
# import, before any op) or "late" (after an op).
#
# Which allocator serves the CPU shows in TensorFlow's memory counter: the
# BFC allocator counts every small buffer as a chunk of 256 bytes or more;
# the default allocator counts none of them (it tracks large buffers only).
PROBE = r"""
import json, logging, os, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="LOG %(levelname)s %(message)s")
environ = dict(os.environ)
import keras_sep
from keras_sep import runtime
when = sys.argv[1]
returned = runtime.use_bfc_allocator() if when == "first" else None
import tensorflow as tf
if when == "imported":
    returned = runtime.use_bfc_allocator()
import keras_sep.layers, keras_sep.models, keras_sep.losses, keras_sep.separation
unchanged = dict(os.environ) == environ
tf.constant(1.0) + 1.0
if when == "late":
    returned = runtime.use_bfc_allocator()
before = tf.config.experimental.get_memory_info("CPU:0")["current"]
kept = [tf.fill((100,), tf.constant(i, tf.uint8)) for i in range(100)]
counted = tf.config.experimental.get_memory_info("CPU:0")["current"] - before
print(json.dumps({"returned": returned, "unchanged": unchanged, "counted": counted,
                  "bfc": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC")}))
"""
# 100 buffers of 100 bytes, each with its 1-byte fill value.
BFC_COUNT = 100 * 2 * 256


def probe(when, **env):
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    environ.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", PROBE, when], capture_output=True, text=True, env=environ, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    return json.loads(lines[-1]), lines[:-1]


def test_import_changes_no_environment_variable_and_keeps_the_default_allocator():
    result, logged = probe("never")
    assert result["unchanged"] and result["bfc"] is None and not logged
    assert result["counted"] == 0, result


@pytest.mark.parametrize("when", ["first", "imported"])
def test_use_bfc_allocator_before_the_first_op_takes_effect(when):
    result, logged = probe(when)
    assert result["returned"] is True and result["bfc"] == "true" and not logged
    assert result["counted"] == BFC_COUNT, result


def test_use_bfc_allocator_after_an_op_says_it_is_too_late():
    result, logged = probe("late")
    assert result["returned"] is False and result["bfc"] is None
    assert result["counted"] == 0, result
    assert len(logged) == 1 and logged[0].startswith("LOG WARNING use_bfc_allocator() has no effect")


def test_an_explicit_setting_is_kept():
    result, _ = probe("first", TF_CPU_ALLOCATOR_USE_BFC="false")
    assert result["returned"] is False and result["bfc"] == "false"
    assert result["counted"] == 0, result


def test_use_bfc_allocator_reads_the_variable_as_tensorflow_does(monkeypatch):
    for value, on in (("true", True), ("1", True), ("TRUE", True), ("false", False), ("0", False)):
        monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", value)
        assert runtime.use_bfc_allocator() is on, value
        assert os.environ["TF_CPU_ALLOCATOR_USE_BFC"] == value


def test_the_allocator_is_part_of_the_tuning_key(monkeypatch):
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "false")
    off = autotune.table_path()
    monkeypatch.setenv("TF_CPU_ALLOCATOR_USE_BFC", "true")
    assert autotune.machine_key()["cpu_allocator_bfc"] == "true"
    assert autotune.table_path() != off


def test_a_keras_module_refuses_another_backend():
    code = "import keras_sep.layers"
    environ = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: keras_sep needs Keras on TensorFlow: set KERAS_BACKEND=tensorflow before Keras is "
        "imported; got KERAS_BACKEND='jax'"
    )


def test_the_backend_check_reads_keras_own_answer(monkeypatch):
    """Keras imported already (its backend may come from keras.json): the
    check asks Keras, not the environment."""
    import keras

    from keras_sep import _backend

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ImportError, match="KERAS_BACKEND=tensorflow before Keras is imported; Keras runs on 'jax'"):
        _backend._check()
    monkeypatch.undo()
    _backend._check()  # TensorFlow again: passes


def test_the_command_line_turns_the_bfc_allocator_on(tmp_path):
    """keras-sep's main() opts in before TensorFlow starts (here a command
    that then fails on its model)."""
    code = (
        "import os, sys\n"
        "from keras_sep import cli\n"
        "rc = cli.main(['export', sys.argv[1], '-m', sys.argv[2]])\n"
        "import tensorflow as tf\n"
        "before = tf.config.experimental.get_memory_info('CPU:0')['current']\n"
        "kept = [tf.fill((100,), tf.constant(i, tf.uint8)) for i in range(100)]\n"
        "print(rc, os.environ.get('TF_CPU_ALLOCATOR_USE_BFC'),\n"
        "      tf.config.experimental.get_memory_info('CPU:0')['current'] - before)\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPU_ALLOCATOR_USE_BFC"}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "1"), str(tmp_path / "missing.keras")],
                          capture_output=True, text=True, env=dict(environ, TF_CPP_MIN_LOG_LEVEL="3"), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2", "true", str(BFC_COUNT)]
