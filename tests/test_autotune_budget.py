"""The tuning budget: a first run times for a few seconds at most (counted
on a fake clock here, never by timed assertions), says so, leaves the rest
to later runs, and ``keras-sep tune`` / ``Separator.tune`` time everything."""
import logging
import math

import pytest
import tensorflow as tf

from keras_sep.inference import autotune, inference_plan
from keras_sep.models import UNetSeparator
from test_autotune import CANDIDATES, cached_choices, small_separator_model


class FakeClock:
    """The time as the fake timings advance it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def clocked(tmp_path, monkeypatch):
    """Timing on, a cache of its own, and timings that take 1 s each on a
    fake clock; returns (clock, list of timed candidate sets)."""
    monkeypatch.setenv("KERAS_SEP_TUNE", "1")
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    monkeypatch.delenv("KERAS_SEP_TUNE_BUDGET", raising=False)
    clock, calls = FakeClock(), []

    def fake(candidates, inputs, rounds=5, compiled=False):
        calls.append(sorted(candidates))
        clock.now += 1.0
        return {name: 10.0 if name == "a" else 1.0 for name in candidates}

    monkeypatch.setattr(autotune, "time_candidates", fake)
    monkeypatch.setattr(autotune, "_budget", autotune._Budget(clock=clock))
    return clock, calls


def new_process(monkeypatch, clock):
    """What a later process starts with: nothing spent."""
    monkeypatch.setattr(autotune, "_budget", autotune._Budget(clock=clock))


def test_a_run_stops_timing_when_its_budget_is_spent(clocked, monkeypatch, tmp_path):
    clock, calls = clocked
    monkeypatch.setattr(autotune, "BUDGET_SECONDS", 2.5)
    choices = [autotune.choose(f"sig{i}", CANDIDATES, (tf.zeros(3),), "a") for i in range(5)]
    # 0, 1 and 2 s spent before the first three: timed; 3 s before the rest.
    assert len(calls) == 3 and autotune.deferred() == 2
    assert choices == ["b", "b", "b", "a", "a"]
    assert sorted(cached_choices(tmp_path)) == ["sig0", "sig1", "sig2"]  # defaults are not cached
    new_process(monkeypatch, clock)
    choices = [autotune.choose(f"sig{i}", CANDIDATES, (tf.zeros(3),), "a") for i in range(5)]
    assert choices == ["b"] * 5 and len(calls) == 5  # only the two left over were timed
    assert autotune.deferred() == 0


def test_the_budget_comes_from_the_environment(clocked, monkeypatch):
    clock, calls = clocked
    monkeypatch.setenv("KERAS_SEP_TUNE_BUDGET", "0")
    assert autotune.choose("sig", CANDIDATES, (tf.zeros(3),), "a") == "a"
    assert calls == [] and autotune.deferred() == 1
    monkeypatch.setenv("KERAS_SEP_TUNE_BUDGET", "inf")
    for i in range(20):
        autotune.choose(f"sig{i}", CANDIDATES, (tf.zeros(3),), "a")
    assert len(calls) == 20
    monkeypatch.setenv("KERAS_SEP_TUNE_BUDGET", "soon")
    with pytest.raises(ValueError, match="KERAS_SEP_TUNE_BUDGET must be seconds.*'soon'"):
        autotune.choose("other", CANDIDATES, (tf.zeros(3),), "a")


def test_unlimited_times_everything_then_restores_the_budget(clocked, monkeypatch):
    clock, calls = clocked
    monkeypatch.setenv("KERAS_SEP_TUNE_BUDGET", "1")
    with autotune.unlimited():
        for i in range(6):
            autotune.choose(f"sig{i}", CANDIDATES, (tf.zeros(3),), "a")
    assert len(calls) == 6
    autotune.choose("after0", CANDIDATES, (tf.zeros(3),), "a")
    autotune.choose("after1", CANDIDATES, (tf.zeros(3),), "a")
    assert len(calls) == 7 and autotune.deferred() == 1


def test_the_run_says_what_it_times_and_what_it_leaves(clocked, monkeypatch, caplog):
    clock, calls = clocked
    monkeypatch.setenv("KERAS_SEP_TUNE_BUDGET", "2")
    with caplog.at_level(logging.INFO, logger="keras_sep.inference.autotune"):
        for i in range(4):
            autotune.choose(f"sig{i}", CANDIDATES, (tf.zeros(3),), "a")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("timing this machine's operator forms for at most 2.0 s in this run")
    assert messages[1].startswith("timed this machine's operator forms for 2.0 s") and "keras-sep tune" in messages[1]


def test_plan_times_the_smallest_layers_first(clocked, monkeypatch):
    clock, calls = clocked
    signatures = []
    real_choose = autotune.choose
    monkeypatch.setattr(autotune, "choose", lambda signature, *a, **k: signatures.append(signature) or real_choose(signature, *a, **k))
    monkeypatch.setenv("KERAS_SEP_TUNE_BUDGET", "inf")
    net = UNetSeparator(filters=(8, 16, 32), bins=32, frames=32)
    inference_plan(net, tune_input_shape=(1, 32, 32, 2))
    layers = [s for s in signatures if s.startswith(("unet.encoder", "unet.decoder"))]
    sizes = [math.prod(int(v) for v in s.split(":")[1].split("x")) for s in layers]
    assert len(layers) == 5 and sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_separator_tune_has_no_budget(clocked, monkeypatch):
    from keras_sep.separation import Separator

    clock, calls = clocked
    monkeypatch.setenv("KERAS_SEP_TUNE_BUDGET", "0")
    assert Separator(small_separator_model()).tune()["batch_size"] in (1, 4)
    assert len(calls) >= 4 and ["1", "4"] in calls
    assert autotune.deferred() == 0
