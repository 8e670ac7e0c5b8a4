"""``keras-sep tune`` prepares the LiteRT export that ``--engine auto`` runs
short inputs with; a stale or corrupt one is made again, never used."""
import argparse
import os

import numpy as np
import pytest
import soundfile as sf

from keras_sep import _cli_engine, _cli_plans, cli
from keras_sep.inference import autotune
from keras_sep.litert import cache as litert_cache
from test_litert import RATE, small_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(5)
    path = tmp_path_factory.mktemp("model") / "small.keras"
    small_model().save(path)
    return str(path)


@pytest.fixture()
def tune_env(tmp_path, monkeypatch):
    """Timing on with fixed timings (nothing really timed), a cache of its own."""
    monkeypatch.setenv("KERAS_SEP_TUNE", "1")
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(autotune, "time_candidates",
                        lambda candidates, inputs, rounds=5, compiled=False: {n: 1.0 for n in candidates})
    wave = np.random.default_rng(4).uniform(-0.5, 0.5, (4000, 2)).astype(np.float32)
    sf.write(tmp_path / "song.wav", wave, RATE, subtype="FLOAT")
    return str(tmp_path / "song.wav")


def auto_args(model):
    return argparse.Namespace(model=model, engine="auto", mwf=False, phase="mixture", precision="float32",
                              plot=False, batch_size=None, offset=0.0, duration=None)


def test_tune_prepares_the_export_auto_then_uses(model_file, tune_env, capsys):
    pytest.importorskip("ai_edge_litert")
    assert _cli_engine.choose(auto_args(model_file), [tune_env]) == "tensorflow"
    assert cli.main(["tune", "-m", model_file]) == 0
    out = capsys.readouterr().out
    exported = litert_cache.cached_export(model_file)
    assert exported is not None and f"LiteRT export: {exported}" in out
    # ... and the saved plan a later TensorFlow run starts from.
    plan = _cli_plans.cached_folder(auto_args(model_file))
    assert plan is not None and f"saved plan: {plan}" in out
    assert _cli_engine.choose(auto_args(model_file), [tune_env]) == "litert"
    modified = os.path.getmtime(os.path.join(exported, "keras_sep.json"))
    assert cli.main(["tune", "-m", model_file]) == 0  # kept: not converted again
    assert "converting" not in capsys.readouterr().err
    assert os.path.getmtime(os.path.join(exported, "keras_sep.json")) == modified


def test_tune_makes_a_corrupt_export_again(model_file, tune_env, capsys):
    pytest.importorskip("ai_edge_litert")
    assert cli.main(["tune", "-m", model_file]) == 0
    exported = litert_cache.cached_export(model_file)
    config = litert_cache.read_config(exported)
    with open(config["model"], "r+b") as handle:  # one flipped byte in the network
        handle.seek(100)
        byte = handle.read(1)
        handle.seek(100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    capsys.readouterr()
    assert cli.main(["tune", "-m", model_file]) == 0
    err = capsys.readouterr().err
    assert "stale or corrupt LiteRT export" in err and "converting" in err
    assert litert_cache.cached_export(model_file) == exported


def test_tune_in_bfloat16_makes_no_export(model_file, tune_env, capsys):
    assert cli.main(["tune", "-m", model_file, "--precision", "bfloat16"]) == 0
    assert "LiteRT export" not in capsys.readouterr().out
    assert litert_cache.cached_export(model_file) is None


def test_auto_checks_the_cached_export_once_per_run(model_file, tune_env, tmp_path, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    from keras_sep import pretrained

    assert cli.main(["tune", "-m", model_file]) == 0
    hashed = []
    real = pretrained.sha256
    monkeypatch.setattr(pretrained, "sha256", lambda path, *a, **k: hashed.append(str(path)) or real(path, *a, **k))
    assert cli.main(["separate", tune_env, "-m", model_file, "-o", str(tmp_path / "out")]) == 0
    assert os.path.isfile(tmp_path / "out" / "song" / "vocals.wav")
    assert len([p for p in hashed if p.endswith(".tflite")]) == 1
