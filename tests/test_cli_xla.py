"""``keras-sep`` keeps TensorFlow's persistent XLA cache, checked like the weights."""
import glob
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from keras_sep import _cli_xla
from test_litert import RATE, small_model

# How a fresh process sees the cache: start() as the CLI calls it, without TensorFlow.
PEEK = (
    "import os, sys\n"
    "from keras_sep import _cli_xla\n"
    "with _cli_xla.command(sys.argv[1] == 'separate'):\n"
    "    _cli_xla.start()\n"
    "    print('during', os.environ.get('TF_XLA_FLAGS'))\n"
    "print('after', os.environ.get('TF_XLA_FLAGS'))\n"
    "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
)


def environ(cache, **extra):
    """The test session's environment with the command's caches on (no operator timing: the same plan every run)."""
    switches = ("TF_XLA_FLAGS", "KERAS_SEP_XLA_CACHE", "KERAS_SEP_PLAN_CACHE")
    env = {k: v for k, v in os.environ.items() if k not in switches}
    env.update(KERAS_SEP_CACHE=str(cache), KERAS_SEP_TUNE="1", KERAS_SEP_TUNE_BUDGET="0")
    env.update(extra)
    return env


def peek(cache, command="separate", **extra):
    done = subprocess.run([sys.executable, "-c", PEEK, command], env=environ(cache, **extra), capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["tensorflow"] == "imported: False"
    return lines["during"], lines["after"], done.stderr


def test_the_cache_folder_is_keyed_by_the_machine_and_given_to_tensorflow_only_for_the_command(tmp_path):
    during, after, _ = peek(tmp_path)
    shared = glob.glob(str(tmp_path / "xla" / "*"))
    assert len(shared) == 1 and os.path.isfile(os.path.join(shared[0], "key.json"))
    flag, _, run = during.partition("=")
    assert flag == "--tf_xla_persistent_cache_directory" and os.path.dirname(run) == shared[0]
    assert after == "None"  # restored, and the process's own folder removed
    assert not os.path.exists(run)
    # Another TensorFlow build or XLA setting compiles other code: another folder.
    peek(tmp_path, XLA_FLAGS="--xla_cpu_enable_fast_math=false")
    assert len(glob.glob(str(tmp_path / "xla" / "*"))) == 2


def test_a_users_tf_xla_flags_are_kept_and_their_own_cache_directory_wins(tmp_path):
    during, after, _ = peek(tmp_path, TF_XLA_FLAGS="--tf_xla_enable_lazy_compilation=false")
    assert during.startswith("--tf_xla_enable_lazy_compilation=false --tf_xla_persistent_cache_directory=")
    assert after == "--tf_xla_enable_lazy_compilation=false"
    own = f"--tf_xla_persistent_cache_directory={tmp_path / 'mine'}"
    during, after, _ = peek(tmp_path / "other", TF_XLA_FLAGS=own)
    assert during == after == own and not os.path.exists(tmp_path / "other" / "xla")


@pytest.mark.parametrize("switch", [{"KERAS_SEP_TUNE": "0"}, {"KERAS_SEP_XLA_CACHE": "off"}])
def test_switched_off_it_leaves_tensorflow_as_it_is(tmp_path, switch):
    during, after, _ = peek(tmp_path, **switch)
    assert during == after == "None" and not os.path.exists(tmp_path / "xla")


def test_commands_that_do_not_separate_leave_tensorflow_as_it_is(tmp_path):
    during, after, _ = peek(tmp_path, "train")
    assert during == after == "None" and not os.path.exists(tmp_path / "xla")


def test_run_folders_of_ended_processes_are_removed(tmp_path):
    peek(tmp_path)
    shared = glob.glob(str(tmp_path / "xla" / "*"))[0]
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = os.path.join(shared, f"run-{int(ended.stdout)}-x1y2")
    alive = os.path.join(shared, f"run-{os.getpid()}-x1y2")
    os.makedirs(abandoned), os.makedirs(alive)
    peek(tmp_path)
    assert not os.path.exists(abandoned) and os.path.exists(alive)


def test_stderr_filter_drops_only_the_loaders_false_alarms():
    noise = (
        b"E0000 00:00:1796567360.168164   17555 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target machine "
        b"feature +prefer-no-gather is not  supported on the host machine. Machine type ... SIGILL.\n"
        b"E0000 00:00:1796567571.158016   18436 text_format.cc:378] Error parsing text-format "
        b"tensorflow.XlaSerializedCacheEntry: 2:1: Expected identifier, got: 5\n"
    )
    real = b"E0000 00:00:1796567360.168164   17555 cpu_aot_loader.cc:220] Loading XLA:CPU AOT result. Target machine " \
           b"feature +avx512f is not  supported on the host machine.\n"
    # A log line may also start after a progress bar's "\r" line, which has no newline.
    text = b"keras-sep: a line\n" + noise + b"\rsong: 10%\rsong: 100%" + noise + b"\nError: kept\n" + real + b"E"
    done = subprocess.run([sys.executable, "-c", _cli_xla._FILTER], input=text, capture_output=True)
    assert done.stdout == b"keras-sep: a line\n\rsong: 10%\rsong: 100%\nError: kept\n" + real + b"E"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(21)
    path = tmp_path_factory.mktemp("model") / "small.keras"
    small_model().save(path)
    return str(path)


def separate(model_file, song, output, cache):
    done = subprocess.run(
        [sys.executable, "-m", "keras_sep.cli", "separate", song, "-m", model_file, "--engine", "tensorflow",
         "-o", str(output)], env=environ(cache), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    stems = {name: sf.read(output / "song" / f"{name}.wav", dtype="float32")[0] for name in ("vocals", "accompaniment")}
    return stems, done.stderr


def entries(cache):
    """{entry file: (inode, its sha256)}, after checking each against its record."""
    found = {}
    for path in glob.glob(str(cache / "xla" / "*" / "*.pb")):
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
        assert open(path + ".sha256").read() == digest
        found[path] = os.stat(path).st_ino, digest
    return found


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_code_and_corrupt_entries_are_compiled_again(model_file, tmp_path):
    wave = np.random.default_rng(3).uniform(-0.5, 0.5, (5000, 2)).astype(np.float32)
    song = str(tmp_path / "song.wav")
    sf.write(song, wave, RATE, subtype="FLOAT")
    cache = tmp_path / "cache"
    first, _ = separate(model_file, song, tmp_path / "a", cache)
    probed = entries(cache)
    assert probed and not glob.glob(str(cache / "xla" / "*" / "run-*"))
    # The first process also checks the plan on a probe (later ones find its
    # record), which traces the network in another order, under other names.
    separate(model_file, song, tmp_path / "a2", cache)
    stored = entries(cache)

    second, stderr = separate(model_file, song, tmp_path / "b", cache)
    # Loaded, not compiled again: TensorFlow writes an entry only after compiling it.
    assert entries(cache) == stored
    assert [line for line in stderr.splitlines() if not line.startswith("keras-sep: ")] == [], stderr
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])

    # A truncated entry fails TensorFlow's run, a garbled one too, and an
    # altered one is loaded as it is: each is removed and compiled again.
    # The entries the second process added are those every later one loads.
    paths = sorted(set(stored) - set(probed), key=os.path.getsize)
    assert len(paths) >= 3
    with open(paths[0], "r+b") as handle:
        handle.truncate(os.path.getsize(paths[0]) // 2)
    with open(paths[1], "wb") as handle:
        handle.write(os.urandom(1000))
    data = bytearray(open(paths[-1], "rb").read())
    data[int(len(data) * 0.95)] ^= 0x10  # in the machine code
    open(paths[-1], "wb").write(bytes(data))
    third, stderr = separate(model_file, song, tmp_path / "c", cache)
    assert "3 stale or corrupt XLA cache entries removed" in stderr
    for name in first:
        np.testing.assert_array_equal(third[name], first[name])
    rebuilt = entries(cache)
    assert set(rebuilt) == set(stored)
    # Compiled again (a new file with its record: the bytes differ from run to run).
    assert all(rebuilt[p][0] != stored[p][0] for p in (paths[0], paths[1], paths[-1]))


def test_main_keeps_the_cache_for_the_commands_that_separate(monkeypatch, tmp_path):
    import contextlib

    from keras_sep import cli

    asked = []
    monkeypatch.setattr(_cli_xla, "command", lambda use: asked.append(use) or contextlib.nullcontext())
    for name in ("_separate", "_tune", "_evaluate", "_train", "_export"):
        monkeypatch.setattr(cli, name, lambda args: 0)
    for argv in (["separate", "x.wav"], ["tune"], ["evaluate", str(tmp_path)], ["train", "-o", str(tmp_path)],
                 ["export", "d"]):
        assert cli.main(argv) == 0
    assert asked == [True, True, True, False, False]
