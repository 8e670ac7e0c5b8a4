"""keras_sep.inference.autotune and the tuned inference plan: the fastest form wins,
the choice is cached per machine, and a tuned plan still equals the model."""
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_sep.models import UNetSeparator, WaveformSeparator
from keras_sep.inference import autotune, inference_plan
from keras_sep.separation import Separator
from test_unet_inference import randomise


@pytest.fixture
def tuning(tmp_path, monkeypatch):
    """Timing on, with a cache of its own."""
    monkeypatch.setenv("KERAS_SEP_TUNE", "1")
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    # No budget: these tests time real candidates, and their timings add up
    # over the session (tests/test_autotune_budget.py tests the budget).
    monkeypatch.setattr(autotune, "_budget", autotune._Budget(limit=float("inf")))
    return tmp_path


def cached_choices(root):
    (path,) = glob.glob(os.path.join(root, "tuning", "*.json"))
    with open(path) as f:
        table = json.load(f)
    assert table["machine"] == autotune.machine_key()
    return table["choices"]


def fixed_timings(monkeypatch, timings):
    calls = []

    def fake(candidates, inputs, rounds=5, compiled=False):
        calls.append(sorted(candidates))
        return {name: timings[name] for name in candidates}

    monkeypatch.setattr(autotune, "time_candidates", fake)
    return calls


CANDIDATES = {"a": lambda x: x + 1, "b": lambda x: 1 + x, "c": lambda x: x - (-1)}


def test_fastest_candidate_wins_and_is_cached(tuning, monkeypatch):
    calls = fixed_timings(monkeypatch, {"a": 10.0, "b": 5.0, "c": 7.0})
    assert autotune.choose("sig", CANDIDATES, (tf.zeros(3),), "a") == "b"
    assert cached_choices(tuning)["sig"] == {"choice": "b", "ms": {"a": 10.0, "b": 5.0, "c": 7.0}}
    # A second process would find it in the cache without timing again.
    assert autotune.choose("sig", CANDIDATES, (tf.zeros(3),), "a") == "b"
    assert len(calls) == 1
    # A new candidate invalidates the entry.
    more = dict(CANDIDATES, d=lambda x: x + 1.0)
    fixed_timings(monkeypatch, {"a": 10.0, "b": 5.0, "c": 7.0, "d": 1.0})
    assert autotune.choose("sig", more, (tf.zeros(3),), "a") == "d"


def test_default_kept_within_the_noise_margin(tuning, monkeypatch):
    fixed_timings(monkeypatch, {"a": 10.0, "b": 9.9, "c": 20.0})
    assert autotune.choose("sig", CANDIDATES, (tf.zeros(3),), "a") == "a"
    fixed_timings(monkeypatch, {"a": 10.0, "b": 9.0, "c": 20.0})
    assert autotune.choose("other", CANDIDATES, (tf.zeros(3),), "a") == "b"


def test_timing_off_takes_the_default_without_timing(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    monkeypatch.setenv("KERAS_SEP_TUNE", "off")
    calls = fixed_timings(monkeypatch, {"a": 10.0, "b": 1.0, "c": 1.0})
    assert autotune.choose("sig", CANDIDATES, (tf.zeros(3),), "a") == "a"
    assert calls == [] and not os.path.exists(os.path.join(tmp_path, "tuning"))


def test_unknown_default_is_an_error():
    with pytest.raises(ValueError, match="'z' is not among"):
        autotune.choose("sig", CANDIDATES, (tf.zeros(3),), "z")


def test_real_timings_tell_much_more_work_from_little():
    small, large = tf.random.uniform((8, 8)), tf.random.uniform((384, 384))
    timings = autotune.time_candidates(
        {"little": lambda a, b: tf.matmul(a, a), "much": lambda a, b: tf.matmul(tf.matmul(b, b), b)}, (small, large))
    assert set(timings) == {"little", "much"} and timings["little"] > 0
    assert timings["much"] > timings["little"]


def test_table_collects_choices_until_saved(tuning, monkeypatch):
    fixed_timings(monkeypatch, {"a": 3.0, "b": 2.0, "c": 1.0})
    table = {}
    assert autotune.choose("sig", CANDIDATES, lambda: (tf.zeros(3),), "a", table) == "c"
    assert not os.path.exists(os.path.join(tuning, "tuning"))
    autotune.save(table)
    assert cached_choices(tuning)["sig"]["choice"] == "c"


def test_tuned_plan_equals_model_and_reuses_the_cache(tuning, monkeypatch):
    net = randomise(UNetSeparator(filters=(8, 16, 32), bins=32, frames=32), seed=7)
    x = np.random.default_rng(5).uniform(0, 2, (1, 32, 32, 2)).astype("float32")
    plan = inference_plan(net, tune_input_shape=x.shape)
    choices = cached_choices(tuning)
    decoders = [k for k in choices if k.startswith("unet.decoder:")]
    # Inner decoder stages are timed; the last one joins the XLA head.
    assert len(decoders) == 2 and plan.forms["decoder"][-1] == "head"
    assert "unet.decoder:1x4x4x32:k5x5x16x32:s2" in choices
    assert "unet.encoder:1x32x32x2:k5x5x2x16:s2" in choices  # both instruments' first convolution
    for key, forms in plan.forms.items():
        assert all(f in ("conv", "patches", "native", "phases", "merged", "taps", "head") for f in forms)
    for signature, entry in choices.items():
        assert entry["choice"] in entry["ms"]
    got, expected = plan(x), net(x, training=False)
    for name in net.instruments:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), rtol=2e-5, atol=2e-6)

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again")

    monkeypatch.setattr(autotune, "time_candidates", no_timing)
    assert inference_plan(net, tune_input_shape=x.shape).forms == plan.forms


def test_separator_tunes_for_its_chunks(tuning):
    net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    model = WaveformSeparator(net, sample_rate=8000, frame_length=64, frame_step=16, overlap_frames=4)
    wave = np.random.default_rng(0).uniform(-0.5, 0.5, (900, 2)).astype("float32")
    tuned = Separator(model, batch_size=2).separate(wave, sample_rate=8000)
    assert "unet.encoder:2x16x16x2:k5x5x2x8:s2" in cached_choices(tuning)
    plain = Separator(model, fast=False).separate(wave, sample_rate=8000)
    for name in model.instruments:
        np.testing.assert_allclose(tuned[name], plain[name], atol=1e-5 * np.abs(plain[name]).max())


def small_separator_model():
    net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    randomise(net)
    return WaveformSeparator(net, sample_rate=8000, frame_length=64, frame_step=16, overlap_frames=4)


def test_separator_batch_size_is_the_fastest_and_cached(tuning, monkeypatch):
    model = small_separator_model()
    calls = []
    real = autotune.time_candidates

    def favour_four(candidates, inputs, rounds=5, compiled=False):
        if not any(name.startswith("unet.") for name in candidates) and set(candidates) == {"1", "4"}:
            calls.append(compiled)
            # The candidates really run: each separates the same four chunks.
            outputs = {
                name: {inst: np.concatenate([call[inst] for call in fn(*inputs)]) for inst in model.instruments}
                for name, fn in candidates.items()
            }
            for name in ("4",):
                for inst in model.instruments:
                    assert outputs[name][inst].shape[0] == 4
                    np.testing.assert_allclose(outputs[name][inst], outputs["1"][inst], rtol=1e-5, atol=1e-6)
            return {"1": 10.0, "4": 8.0}
        return real(candidates, inputs, rounds=rounds, compiled=compiled)

    monkeypatch.setattr(autotune, "time_candidates", favour_four)
    sep = Separator(model)
    wave = np.random.default_rng(1).uniform(-0.5, 0.5, (3000, 2)).astype("float32")
    tuned = sep.separate(wave, sample_rate=8000)
    assert sep.batch_size == 4 and calls == [True]
    (key,) = [k for k in cached_choices(tuning) if k.startswith("separator.batch:")]
    assert cached_choices(tuning)[key]["choice"] == "4"
    plain = Separator(model, fast=False).separate(wave, sample_rate=8000)
    for name in model.instruments:
        np.testing.assert_allclose(tuned[name], plain[name], atol=1e-5 * np.abs(plain[name]).max())
    # A new separator finds the answer in the cache and makes no plan for it.
    again = Separator(model)
    assert again.batch_size == 4 and calls == [True] and again._pipelines == {}
    # Within the noise margin the default of one chunk stays.
    close = {"1": 10.0, "4": 9.8}
    monkeypatch.setattr(autotune, "time_candidates", lambda c, i, rounds=5, compiled=False: {n: close.get(n, 1.0) for n in c})
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tuning / "other"))
    assert Separator(model).batch_size == 1


def test_separator_batch_size_without_timing(monkeypatch):
    monkeypatch.setenv("KERAS_SEP_TUNE", "0")

    def no_timing(*args, **kwargs):
        raise AssertionError("timed")

    monkeypatch.setattr(autotune, "time_candidates", no_timing)
    model = small_separator_model()
    assert Separator(model).batch_size == 1
    monkeypatch.setenv("KERAS_SEP_TUNE", "1")
    assert Separator(model, fast=False).batch_size == 1  # no plan, nothing to time
    assert Separator(model, batch_size=3).batch_size == 3
    for bad in (0, -2, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            Separator(model, batch_size=bad)


def test_cli_tune_times_now_and_refreshes(tuning, monkeypatch, tmp_path, capsys):
    from keras_sep import cli

    path = str(tmp_path / "small.keras")
    small_separator_model().save(path)
    timings = {"1": 10.0, "4": 8.0, "native": 5.0}
    calls = fixed_timings(monkeypatch, {})
    monkeypatch.setattr(autotune, "time_candidates",
                        lambda c, i, rounds=5, compiled=False: calls.append(sorted(c)) or {n: timings.get(n, 9.0) for n in c})
    assert cli.main(["tune", "-m", path]) == 0
    out = capsys.readouterr().out
    assert "chunks per call: 4" in out and f"timings: {autotune.table_path()}" in out
    assert "decoder forms: native head" in out and "encoder forms: conv conv" in out
    assert ["1", "4"] in calls
    timed = len(calls)
    assert cli.main(["tune", "-m", path]) == 0  # cached: nothing timed again
    assert len(calls) == timed
    assert cli.main(["tune", "-m", path, "--refresh"]) == 0
    assert "removed this machine's timings" in capsys.readouterr().out
    assert len(calls) > timed
    monkeypatch.setenv("KERAS_SEP_TUNE", "0")
    assert cli.main(["tune", "-m", path]) == 2
    assert "timing is off" in capsys.readouterr().err


def test_timing_many_candidates_does_not_warn_about_retracing():
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = tf.get_logger()
    logger.addHandler(handler)
    try:
        for _ in range(4):  # TensorFlow warns after 5 traces of new functions in a row
            autotune.time_candidates({str(i): (lambda x, i=i: x + i) for i in range(4)}, (tf.zeros(3),), rounds=1)
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if "retracing" in r.getMessage()]
    assert logger.level == logging.getLogger("tensorflow").level


def test_batch_timing_keeps_the_file_pipeline(tuning, monkeypatch, tmp_path):
    """A file separation's one-chunk plan, made before the batch size is
    timed, is still the one in use after timing chose four (no retrace)."""
    import soundfile as sf

    model = small_separator_model()
    real = autotune.time_candidates

    def favour_four(candidates, inputs, rounds=5, compiled=False):
        if set(candidates) == {"1", "4"}:
            return {"1": 10.0, "4": 8.0}
        return real(candidates, inputs, rounds=rounds, compiled=compiled)

    monkeypatch.setattr(autotune, "time_candidates", favour_four)
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, (3000, 2)).astype("float32")
    sf.write(tmp_path / "song.wav", wave, 8000, subtype="FLOAT")
    sep = Separator(model)
    first = sep.separate_to_file(tmp_path / "song.wav", tmp_path / "a")
    file_pipeline = sep._pipelines[1]
    stems = sep.separate(wave, sample_rate=8000)
    assert sep.batch_size == 4 and set(sep._pipelines) == {1, 4}
    assert sep._pipelines[1] is file_pipeline
    again = sep.separate_to_file(tmp_path / "song.wav", tmp_path / "b")
    assert sep._pipelines[1] is file_pipeline
    for name in model.instruments:
        a, b = sf.read(first[name], dtype="float32")[0], sf.read(again[name], dtype="float32")[0]
        np.testing.assert_array_equal(a, b)
        np.testing.assert_allclose(a, stems[name], atol=1e-4 * np.abs(stems[name]).max())


def test_timing_note_goes_through_logging(tuning, monkeypatch, caplog, capsys):
    import logging

    fixed_timings(monkeypatch, {"a": 10.0, "b": 5.0, "c": 7.0})
    with caplog.at_level(logging.INFO, logger="keras_sep.inference.autotune"):
        autotune.choose("sig", CANDIDATES, (tf.zeros(3),), "a", note="timing the candidates once")
        autotune.choose("sig", CANDIDATES, (tf.zeros(3),), "a", note="cached: not logged")
    assert [r.getMessage() for r in caplog.records] == ["timing the candidates once"]
    assert capsys.readouterr().err == ""
