"""What `keras-sep` prints: its own one-line messages and the progress bar;
TensorFlow's and CUDA's start-up notices only with --verbose."""
import logging
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf

from keras_sep import _cli_process, cli, pretrained, runtime
from test_separator import RATE, tiny_model

# The lines TensorFlow 2.21 writes to stderr at start-up on a CPU machine.
NOISE = re.compile(r"cudart_stub|cuInit|^[IWE]\d{4} |oneDNN|absl::InitializeLog|To enable the following", re.M)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(5)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_model().save(path)
    return str(path)


def run_cli(*args, **env):
    """`python -m keras_sep.cli ARGS` as a user runs it: no TF_CPP_MIN_LOG_LEVEL.
    Bytes, decoded here: text mode would turn the progress bar's \\r into \\n."""
    environ = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_CPU_ALLOCATOR_USE_BFC")}
    environ.update(env)
    done = subprocess.run([sys.executable, "-m", "keras_sep.cli", *args], capture_output=True, env=environ, timeout=300)
    done.stdout, done.stderr = done.stdout.decode(), done.stderr.decode()
    return done


def test_separate_shows_its_own_lines_and_the_progress_bar_only(model_file, tmp_path):
    # Over a minute of audio: the separator shows a progress bar.
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (61 * RATE, 1)).astype(np.float32)
    sf.write(tmp_path / "long.wav", wave, RATE)
    done = run_cli("separate", str(tmp_path / "long.wav"), str(tmp_path / "missing.wav"), "-o", str(tmp_path / "out"),
                   "-m", model_file)
    assert done.returncode == 1
    assert done.stdout.splitlines()[0] == f"{tmp_path / 'long.wav'}:"
    assert not NOISE.search(done.stderr), done.stderr
    progress, _, rest = done.stderr.rpartition("\r")
    assert "long.wav: 100%" in progress and "488k/488k" in progress
    assert rest == f"keras-sep: {tmp_path / 'missing.wav'}: no such file\n"


def test_verbose_shows_tensorflow_start_up_and_the_same_error(tmp_path):
    missing = str(tmp_path / "missing.keras")
    expected = f"keras-sep: {missing}: no such model file (or preset)\n"
    # With oneDNN's optimisations asked for, TensorFlow announces them at
    # start-up on every x86 build: a line that must show only with -v.
    onednn = {"TF_ENABLE_ONEDNN_OPTS": "1"}
    quiet = run_cli("export", str(tmp_path / "serving" / "1"), "-m", missing, **onednn)
    assert quiet.returncode == 2 and quiet.stderr == expected
    verbose = run_cli("export", "-v", str(tmp_path / "serving" / "1"), "-m", missing, **onednn)
    assert verbose.returncode == 2 and verbose.stderr.endswith(expected)
    assert "oneDNN custom operations are on" in verbose.stderr, verbose.stderr
    assert "keras-sep: [keras_sep.cli] loading model" in verbose.stderr  # with the traceback
    assert "Traceback" in verbose.stderr


def test_quiet_start_up_passes_on_what_is_not_a_start_up_notice(capsys):
    captured = (
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1796547577.301980    9380 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1796547577.304479    9380 cudart_stub.cc:31] Could not find cuda drivers on your machine\n"
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow\n"
        "E0000 00:00:1796547583.043229    9380 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
        "E0000 00:00:17.5  11 external/local_xla/xla/stream_executor/cuda/cuda_fft.cc:467] Unable to register cuFFT\n"
        "E0000 00:00:1796547583.043229    9380 op_kernel.cc:12] a real failure\n"
        "F0000 00:00:1796547583.043229    9380 cuda_platform.cc:52] failed call to cuInit: fatal\n"
        "libsomething.so: cannot open shared object file\n"
    )
    runtime._pass_on(captured)
    assert capsys.readouterr().err == (
        "E0000 00:00:1796547583.043229    9380 op_kernel.cc:12] a real failure\n"
        "F0000 00:00:1796547583.043229    9380 cuda_platform.cc:52] failed call to cuInit: fatal\n"
        "libsomething.so: cannot open shared object file\n"
    )


def test_stderr_is_captured_at_the_descriptor_and_given_back(capfd):
    with runtime._stderr_captured() as captured:
        os.write(2, b"from C code\n")
    os.write(2, b"after\n")
    assert captured == ["from C code\n"]
    assert capfd.readouterr().err == "after\n"


def test_messages_are_keras_sep_lines_for_one_command_only(capsys):
    log = logging.getLogger("keras_sep.somewhere")
    before = logging.getLogger("keras_sep").level, logging.getLogger("keras_sep").propagate
    for verbose in (False, True):
        with _cli_process.messages_to_stderr(verbose):
            log.info("wrote %d files", 2)
            log.debug("details")
            log.warning("slow here")
            warnings.warn("two\n  lines", RuntimeWarning)
        shown = ["keras-sep: wrote 2 files", "keras-sep: warning: slow here", "keras-sep: warning: two lines"]
        if verbose:
            shown.insert(1, "keras-sep: [keras_sep.somewhere] details")
        assert capsys.readouterr().err.splitlines() == shown
    log.warning("outside a command")
    assert "keras-sep" not in capsys.readouterr().err
    assert (logging.getLogger("keras_sep").level, logging.getLogger("keras_sep").propagate) == before
    assert not logging.getLogger("keras_sep").handlers


MODEL_PRESETS = sorted(name for name in pretrained.presets() if not name.startswith("asset:"))


@pytest.mark.parametrize("command", [["separate", "x.wav"], ["export", "serving/1"], ["evaluate", "root"], ["tune"]])
def test_every_command_reports_a_bad_model_on_one_line(command, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("KERAS_SEP_TUNE", "1")  # else tune stops before the model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.keras").write_text("not a model")
    (tmp_path / "folder.keras").mkdir()
    for model, message in [
        ("spleeter:9stems", f"unknown preset 'spleeter:9stems'; available: {MODEL_PRESETS}"),
        ("missing.keras", "missing.keras: no such model file (or preset)"),
        ("text.keras", "text.keras: not a .keras model file (Keras' zip archive)"),
        ("folder.keras", "folder.keras: is a directory, not a .keras model file"),
    ]:
        assert cli.main([*command, "-m", model]) == 2, model
        err = capsys.readouterr().err
        assert err.startswith("keras-sep: ") and err.endswith(f"{message}\n") and err.count("\n") == 1, err
        assert err.count(model) == 1, err  # the model is named once
    assert sorted(os.listdir(tmp_path)) == ["folder.keras", "text.keras"]  # nothing written


def test_usage_and_file_errors_of_the_other_commands_are_one_line(model_file, tmp_path, capsys):
    cases = [
        (["evaluate", str(tmp_path), "-m", model_file, "--target", "vocals"], 2,
         "keras-sep: --target must look like NAME=STEM[+STEM...], got 'vocals'"),
        (["evaluate", str(tmp_path / "nowhere"), "-m", model_file], 1,
         f"keras-sep: {tmp_path / 'nowhere' / 'test'}: no such folder (expected ROOT/test/<track>/<stem>.wav)"),
        (["train", "-c", str(tmp_path / "missing.json")], 2, None),
    ]
    (tmp_path / "file").write_text("")
    cases.append((["export", str(tmp_path / "file" / "1"), "-m", model_file], 1,
                  f"keras-sep: {tmp_path / 'file'} is not a directory"))
    for argv, code, message in cases:
        assert cli.main(argv) == code, argv
        err = capsys.readouterr().err
        assert err.startswith("keras-sep: ") and err.count("\n") == 1, (argv, err)
        if message is not None:
            assert err == message + "\n", argv
        else:
            assert "missing.json" in err, err


def test_choice_lists_come_from_the_modules_that_check_them():
    from keras_sep import audio
    from keras_sep.separation import CHUNKING_MODES, PRECISIONS

    def choices(command, option):
        sub = next(a for a in cli.build_parser()._subparsers._group_actions).choices[command]
        return tuple(next(a for a in sub._actions if option in a.option_strings).choices)

    assert choices("separate", "--codec") == tuple(audio.CODECS)
    for command in ("separate", "evaluate", "export"):
        assert choices(command, "--chunking") == CHUNKING_MODES
    for command in ("separate", "tune"):
        assert choices(command, "--precision") == PRECISIONS
    for command in ("separate", "evaluate", "tune", "export"):
        sub = next(a for a in cli.build_parser()._subparsers._group_actions).choices[command]
        assert f"-m MODEL, --model MODEL preset ({', '.join(MODEL_PRESETS)}) or .keras file" in " ".join(sub.format_help().split())


def test_verbose_before_or_after_the_command():
    parser = cli.build_parser()
    assert parser.parse_args(["-v", "tune"]).verbose is True
    assert parser.parse_args(["tune", "--verbose"]).verbose is True
    assert parser.parse_args(["tune"]).verbose is False


def test_quiet_tensorflow_for_a_program_of_ones_own():
    code = (
        "import os\nfrom keras_sep import runtime\n"
        "with runtime.quiet_tensorflow():\n"
        "    import tensorflow as tf\n"
        "    os.write(2, b'a real problem\\n')\n"
        "print(tf.constant(2.0).numpy() * 2, os.environ['TF_CPP_MIN_LOG_LEVEL'])\n"
    )
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=300)
    assert done.returncode == 0 and done.stdout == "4.0 2\n"
    assert done.stderr == "a real problem\n"
