"""``keras-sep separate`` saves its traced plan once, starts later runs from it, and never trusts a bad one."""
import glob
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf

from keras_sep import _cli_plans
from test_cli_xla import environ
from test_litert import RATE, small_model

# keras-sep separate in a fresh process; says afterwards whether Keras was imported.
RUN = (
    "import sys\n"
    "from keras_sep import cli\n"
    "code = cli.main(sys.argv[1:])\n"
    "print('keras imported:', 'keras' in sys.modules)\n"
    "sys.exit(code)\n"
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(31)
    path = tmp_path_factory.mktemp("model") / "small.keras"
    small_model(mask_extension="average").save(path)
    return str(path)


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    wave = np.random.default_rng(9).uniform(-0.5, 0.5, (6000, 2)).astype(np.float32)
    path = str(tmp_path_factory.mktemp("song") / "song.wav")
    sf.write(path, wave, RATE, subtype="FLOAT")
    return path


def separate(model_file, song, output, cache, *options, **env):
    argv = ["separate", song, "-m", model_file, "--engine", "tensorflow", "-o", str(output), "--verbose", *options]
    # Timing completes in the first run (a tiny model), so that run saves the plan.
    env = environ(cache, **{"KERAS_SEP_TUNE_BUDGET": "inf", **env})
    done = subprocess.run([sys.executable, "-c", RUN, *argv], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stems = {name: sf.read(output / "song" / f"{name}.wav", dtype="float32")[0] for name in ("vocals", "accompaniment")}
    return stems, done.stdout, done.stderr


def plans(cache):
    return sorted(glob.glob(str(cache / "plans" / "*")))


@pytest.mark.slow
def test_the_first_run_saves_the_plan_and_the_next_starts_from_it_without_keras(model_file, song, tmp_path):
    cache = tmp_path / "cache"
    first, stdout, stderr = separate(model_file, song, tmp_path / "a", cache)
    assert "saving the traced separation plan for later runs" in stderr
    assert "keras imported: True" in stdout
    [entry] = plans(cache)
    assert os.path.isfile(os.path.join(entry, "keras_sep.json"))

    second, stdout, stderr = separate(model_file, song, tmp_path / "b", cache)
    assert f"running the saved plan {entry}" in stderr and "saving" not in stderr
    assert "keras imported: False" in stdout
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])

    # An altered weight is found before it is used: the entry is removed,
    # the Keras model runs, and the plan is saved again.
    variables = glob.glob(os.path.join(entry, "variables", "variables.data-*"))[0]
    data = bytearray(open(variables, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(variables, "wb").write(bytes(data))
    third, stdout, stderr = separate(model_file, song, tmp_path / "c", cache)
    assert "stale or corrupt saved plan in the cache; it is made again" in stderr
    assert "running the saved plan" not in stderr and "keras imported: True" in stdout
    assert plans(cache) == [entry]
    for name in first:
        np.testing.assert_array_equal(third[name], first[name])
    _, _, stderr = separate(model_file, song, tmp_path / "d", cache)
    assert f"running the saved plan {entry}" in stderr

    # Other options are other plans; what a plan cannot serve loads the model.
    _, _, stderr = separate(model_file, song, tmp_path / "e", cache, "--mwf")
    assert "running the saved plan" not in stderr and "saving" not in stderr
    separate(model_file, song, tmp_path / "f", cache, "--phase", "griffin_lim", "--phase-iterations", "2")
    assert len(plans(cache)) == 2


@pytest.mark.slow
def test_switched_off_or_with_timings_left_to_later_runs_no_plan_is_saved(model_file, song, tmp_path):
    separate(model_file, song, tmp_path / "a", tmp_path / "off", KERAS_SEP_PLAN_CACHE="0")
    assert plans(tmp_path / "off") == []
    # A run that left operator timings to later runs would save a plan of untimed forms.
    _, _, stderr = separate(model_file, song, tmp_path / "b", tmp_path / "deferred", KERAS_SEP_TUNE_BUDGET="0")
    assert plans(tmp_path / "deferred") == [] and "saving" not in stderr


def arguments(**changes):
    values = dict(model="spleeter:2stems", mwf=False, batch_size=None, precision="float32", phase="mixture",
                  phase_iterations=None, verbose=False, chunking="overlap")
    values.update(changes)
    return types.SimpleNamespace(**values)


def test_the_options_a_plan_serves():
    from keras_sep.separation import DEFAULT_PHASE_ITERATIONS

    assert _cli_plans.served_options(arguments()) == ("float32", "mixture", 0)
    assert _cli_plans.served_options(arguments(batch_size=1)) == ("float32", "mixture", 0)
    assert _cli_plans.served_options(arguments(phase="griffin_lim")) == (
        "float32", "griffin_lim", DEFAULT_PHASE_ITERATIONS)
    assert _cli_plans.served_options(arguments(phase="griffin_lim", phase_iterations=3, precision="bfloat16")) == (
        "bfloat16", "griffin_lim", 3)
    assert _cli_plans.served_options(arguments(mwf=True)) is None
    assert _cli_plans.served_options(arguments(batch_size=4)) is None
    assert _cli_plans.served_options(arguments(model="exports/x.tflite")) is None


def test_the_key_covers_weights_options_machine_and_code(model_file, monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    options = ("float32", "mixture", 0)
    key = _cli_plans.key(model_file, options)
    assert key == _cli_plans.key(model_file, options) and len(key) == 32
    assert _cli_plans.key(model_file, ("bfloat16", "mixture", 0)) != key
    # Where the running command keeps its XLA code does not change the plan.
    monkeypatch.setenv("TF_XLA_FLAGS", f"--tf_xla_persistent_cache_directory={tmp_path / 'run-1'}")
    assert _cli_plans.key(model_file, options) == key
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
    assert _cli_plans.key(model_file, options) != key
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setattr(_cli_plans, "_code_digest", "0" * 64)  # another keras_sep
    assert _cli_plans.key(model_file, options) != key
    other = tmp_path / "other.keras"
    other.write_bytes(open(model_file, "rb").read() + b"\0")
    assert _cli_plans.key(str(other), options) not in (None, key)
    # A preset whose weights were never fetched has no key yet.
    assert _cli_plans.key("spleeter:5stems", options) is None


def test_saving_a_plan_removes_those_it_supersedes_and_those_long_unused(tmp_path):
    import json

    now = 1_800_000_000.0  # prune's clock: the folders' ages are set against it
    root = tmp_path / "plans"
    fields = {"weights": "w1", "options": ["float32", "mixture", 0], "machine": {"cpu": "x"}, "keras": "3.15",
              "keras_sep": "0.1.0", "code": "new"}

    def entry(name, age_days=0.0, **changes):
        path = root / name
        path.mkdir(parents=True)
        (path / "keras_sep.json").write_text(json.dumps({"source": {"fields": dict(fields, **changes)}}))
        os.utime(path, (now - age_days * 86400,) * 2)
        return str(path)

    keep = entry("new")
    older_code = entry("old-code", code="old")  # this model, options and machine: superseded
    older_keras = entry("old-keras", keras="3.14")
    other_model = entry("other-model", weights="w2")  # used recently: stays
    other_options = entry("bf16", options=["bfloat16", "mixture", 0])
    unused = entry("unused", age_days=31, weights="w3")
    broken = root / "half.partial.123"
    broken.mkdir()
    os.utime(broken, (now - 40 * 86400,) * 2)
    recent_partial = root / "new.partial.456"
    recent_partial.mkdir()
    os.utime(recent_partial, (now,) * 2)

    removed = _cli_plans.prune(keep, fields, clock=lambda: now)
    assert sorted(removed) == sorted([older_code, older_keras, unused, str(broken)])
    assert sorted(os.listdir(root)) == sorted(["new", "other-model", "bf16", "new.partial.456"])
    assert os.path.isdir(other_model) and os.path.isdir(other_options)
