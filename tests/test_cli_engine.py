"""``keras-sep separate --engine``: LiteRT exports from the cache, and auto's choice."""
import argparse
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from keras_sep import _cli_engine, cli
from keras_sep.separation import Separator
from test_litert import RATE, small_model, snr_db


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(21)
    return small_model()


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.keras"
    model.save(path)
    return str(path)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("KERAS_SEP_CACHE", str(folder))
    return folder


@pytest.fixture()
def song(tmp_path):
    wave = np.random.default_rng(3).uniform(-0.5, 0.5, (5000, 2)).astype(np.float32)
    sf.write(tmp_path / "song.wav", wave, RATE, subtype="FLOAT")
    return str(tmp_path / "song.wav"), wave


RUN_CLI = (
    "import sys\n"
    "from keras_sep import cli\n"
    "code = cli.main(sys.argv[1:])\n"
    "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
    "sys.exit(code)\n"
)


def test_litert_engine_converts_once_then_runs_without_tensorflow(model, model_file, cache, song, tmp_path):
    from keras_sep.litert import cache as litert_cache

    path, wave = song
    env = dict(os.environ, KERAS_SEP_CACHE=str(cache))
    argv = ["separate", path, "-m", model_file, "--engine", "litert", "--overwrite", "-o"]
    first = subprocess.run([sys.executable, "-c", RUN_CLI, *argv, str(tmp_path / "a")], env=env,
                           capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "converting" in first.stderr and "tensorflow imported: True" in first.stdout
    exported = litert_cache.cached_export(model_file)
    assert exported is not None and exported.startswith(str(cache))
    second = subprocess.run([sys.executable, "-c", RUN_CLI, *argv, str(tmp_path / "b")], env=env,
                            capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "converting" not in second.stderr and "tensorflow imported: False" in second.stdout
    # Only keras-sep's own lines: the runtime's XNNPACK notice is not one.
    assert [line for line in second.stderr.splitlines() if not line.startswith("keras-sep: ")] == []
    expected = Separator(model, batch_size=1).separate(wave, sample_rate=RATE)
    for out in ("a", "b"):
        for name in model.instruments:
            data, _ = sf.read(tmp_path / out / "song" / f"{name}.wav", dtype="float32")
            assert snr_db(expected[name], data) >= 60


def test_a_corrupt_cached_export_is_made_again(model, model_file, cache, song, tmp_path, capsys):
    from keras_sep.litert import cache as litert_cache

    path, _ = song
    argv = ["separate", path, "-m", model_file, "--engine", "litert", "--overwrite", "-o", str(tmp_path / "out")]
    assert cli.main(argv) == 0
    exported = litert_cache.cached_export(model_file)
    with open(os.path.join(exported, "separator.tflite"), "r+b") as handle:
        handle.seek(1000)
        handle.write(b"\0" * 16)
    assert litert_cache.cached_export(model_file) is None  # stale: removed, not trusted
    assert not os.path.exists(exported)
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "converting" in capsys.readouterr().err
    assert litert_cache.cached_export(model_file) == exported


def test_separate_with_an_export_named_by_m(model, song, tmp_path):
    from keras_sep import export

    path, wave = song
    folder = export.export_litert(Separator(model, chunking="spleeter"), str(tmp_path / "lite"))
    assert cli.main(["separate", path, "-m", folder, "-o", str(tmp_path / "out"), "--chunking", "spleeter"]) == 0
    expected = Separator(model, chunking="spleeter", batch_size=1).separate(wave, sample_rate=RATE)
    for name in model.instruments:
        data, _ = sf.read(tmp_path / "out" / "song" / f"{name}.wav", dtype="float32")
        assert snr_db(expected[name], data) >= 60


def test_requests_litert_cannot_serve_are_one_line_errors(model_file, song, tmp_path, capsys):
    path, _ = song
    for extra, message in ((["--mwf"], "--engine litert does not run --mwf"),
                           (["--precision", "bfloat16"], "--engine litert does not run --precision bfloat16")):
        assert cli.main(["separate", path, "-m", model_file, "--engine", "litert", "-o", str(tmp_path / "o"),
                         *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def _args(model, **overrides):
    defaults = dict(model=model, engine="auto", mwf=False, phase="mixture", precision="float32", plot=False,
                    batch_size=None, offset=0.0, duration=None)
    return argparse.Namespace(**dict(defaults, **overrides))


def test_auto_takes_litert_for_short_inputs_with_a_cached_export(model, model_file, cache, song, monkeypatch):
    from keras_sep import export
    from keras_sep.litert import cache as litert_cache

    path, _ = song  # 0.625 s
    assert _cli_engine.choose(_args(model_file), [path]) == "tensorflow"  # nothing cached yet
    litert_cache.store(model_file, lambda folder, source: export.export_litert(model, folder, source=source))
    assert _cli_engine.choose(_args(model_file), [path]) == "litert"
    assert _cli_engine.choose(_args(model_file, engine="tensorflow"), [path]) == "tensorflow"
    for option in (dict(mwf=True), dict(phase="griffin_lim"), dict(precision="bfloat16"), dict(plot=True),
                   dict(batch_size=4)):
        assert _cli_engine.choose(_args(model_file, **option), [path]) == "tensorflow", option
    monkeypatch.setattr(_cli_engine, "AUTO_LITERT_SECONDS", 0.6)
    assert _cli_engine.choose(_args(model_file), [path]) == "tensorflow"
    assert _cli_engine.choose(_args(model_file, duration=0.5), [path]) == "litert"
    assert _cli_engine.choose(_args(model_file), [path, path]) == "tensorflow"
    # TensorFlow starting from a saved plan overtakes LiteRT on shorter inputs.
    monkeypatch.setattr(_cli_engine, "AUTO_LITERT_SECONDS", 10.0)
    monkeypatch.setattr(_cli_engine, "AUTO_LITERT_SECONDS_SAVED_PLAN", 0.6)
    assert _cli_engine.choose(_args(model_file), [path]) == "litert"
    assert _cli_engine.choose(_args(model_file), [path], saved_plan=True) == "tensorflow"
    assert _cli_engine.choose(_args(model_file, duration=0.5), [path], saved_plan=True) == "litert"


def test_cli_export_format_litert(model, model_file, tmp_path, capsys):
    from keras_sep.litert import LiteRTSeparator

    folder = str(tmp_path / "lite")
    assert cli.main(["export", folder, "--format", "litert", "-m", model_file, "--chunking", "spleeter"]) == 0
    assert f"LiteRT export written to {folder}" in capsys.readouterr().out
    lite = LiteRTSeparator(folder)
    assert lite.chunking == "spleeter" and lite.instruments == model.instruments
    wave = np.random.default_rng(4).uniform(-0.5, 0.5, (3000, 2)).astype(np.float32)
    expected = Separator(model, chunking="spleeter").separate(wave, sample_rate=RATE)
    got = lite.separate(wave, sample_rate=RATE)
    assert all(snr_db(expected[n], got[n]) >= 60 for n in model.instruments)
