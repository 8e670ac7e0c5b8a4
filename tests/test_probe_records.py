"""keras_sep.inference.probes: a plan's passed probe check is recorded per
model, plan and machine, and later plans skip it; anything else checks again."""
import glob
import json
import os

import numpy as np
import pytest

from keras_sep.inference import inference_plan, plan, probes
from keras_sep.models import UNetSeparator
from test_unet_inference import randomise


@pytest.fixture
def recording(tmp_path, monkeypatch):
    """Records on (they follow KERAS_SEP_TUNE), in a cache of its own; returns
    the list of models the probe check ran for."""
    monkeypatch.setenv("KERAS_SEP_TUNE", "1")
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    checked = []
    real = plan.UNetInference._check_probe

    def counting(self, model, arch, compute_dtype):
        checked.append(model.name)
        return real(self, model, arch, compute_dtype)

    monkeypatch.setattr(plan.UNetInference, "_check_probe", counting)
    return checked


def small_net(seed):
    return randomise(UNetSeparator(filters=(4, 8), bins=16, frames=16), seed=seed)


def records(root):
    return glob.glob(os.path.join(root, "probes", "*.json"))


def test_a_passed_check_is_recorded_and_skipped_next_time(recording, tmp_path):
    net = small_net(1)
    first = inference_plan(net, jit_compile=False)
    assert len(recording) == 1 and len(records(tmp_path)) == 1
    second = inference_plan(net, jit_compile=False)
    assert len(recording) == 1  # skipped: same model, plan and machine
    x = np.random.default_rng(0).uniform(size=(1, 16, 16, 2)).astype("float32")
    for name in net.instruments:
        np.testing.assert_array_equal(np.asarray(first(x)[name]), np.asarray(second(x)[name]))
    with open(records(tmp_path)[0]) as handle:
        record = json.load(handle)
    assert record["passed"] is True and 0 <= record["error"] < plan.PROBE_TOLERANCE["float32"]


def test_other_weights_forms_options_or_versions_are_checked_again(recording, tmp_path, monkeypatch):
    net = small_net(1)
    inference_plan(net, jit_compile=False)
    inference_plan(net, jit_compile=False, forms={"decoder": "native"})
    inference_plan(net, jit_compile=True)
    other = small_net(2)  # same configuration, other weights
    inference_plan(other, jit_compile=False)
    assert len(recording) == 4 and len(records(tmp_path)) == 4
    net.weights[0].assign(net.weights[0].numpy() + 1.0)  # the same model, changed in place
    inference_plan(net, jit_compile=False)
    assert len(recording) == 5
    import keras_sep

    monkeypatch.setattr(keras_sep, "__version__", "0.0.0-other")  # other layers' code
    inference_plan(net, jit_compile=False)
    assert len(recording) == 6


def test_a_corrupt_or_foreign_record_is_checked_again(recording, tmp_path, caplog):
    net = small_net(1)
    inference_plan(net, jit_compile=False)
    (path,) = records(tmp_path)
    with open(path, "w") as handle:
        handle.write("{not json")
    inference_plan(net, jit_compile=False)
    assert len(recording) == 2 and "stale or corrupt probe record" in caplog.text
    with open(path) as handle:
        assert json.load(handle)["passed"] is True  # written again
    with open(path, "w") as handle:
        json.dump({"key": "0" * 64, "passed": True, "error": 0.0}, handle)  # another key's record
    inference_plan(net, jit_compile=False)
    assert len(recording) == 3


def test_a_failed_check_is_not_recorded(recording, tmp_path, monkeypatch):
    monkeypatch.setitem(plan.PROBE_TOLERANCE, "float32", -1.0)
    with pytest.raises(ValueError, match="differs from the Keras model"):
        inference_plan(small_net(1), jit_compile=False)
    assert records(tmp_path) == []


def test_no_records_with_timing_off(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SEP_TUNE", "0")
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    inference_plan(small_net(1), jit_compile=False)
    assert records(tmp_path) == []
    assert not probes.passed(probes.key(small_net(1), forms=None))
