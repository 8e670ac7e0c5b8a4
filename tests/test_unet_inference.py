"""keras_sep.inference.inference_plan() against the Keras model it was made from.

The inference plan rewrites batch norms, transposed convolutions and the
mask head; every variant of the architecture must give the Keras model's
output to float32 rounding, with non-trivial batch-norm statistics.
"""
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sep.inference import forms as plan_forms
from keras_sep.inference import inference_plan
from keras_sep.models import UNetSeparator, WaveformSeparator
from keras_sep.separation import Separator


def randomise(model, seed=0):
    """Random weights everywhere, batch-norm statistics included, so that
    nothing the plan folds is an identity."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        shape = tuple(weight.shape)
        path = weight.path
        if "moving_variance" in path or "gamma" in path:
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 4:
            # Fan-in scaling keeps activations of order one through the
            # stages, so float rounding stays far from ReLU and sigmoid edges.
            value = rng.normal(0.0, 1.0 / np.sqrt(np.prod(shape[:-1])), shape)
        else:
            value = rng.normal(0.0, 0.3, shape)
        weight.assign(value.astype("float32"))
    return model


VARIANTS = {
    "spleeter_like": dict(filters=(4, 8, 16)),
    # decoder outputs 64, 32, 16, 8, 1: every transposed-convolution plan
    "all_plans": dict(filters=(8, 16, 32, 64, 128)),
    "elu": dict(filters=(4, 8, 16), encoder_activation="elu", decoder_activation="elu"),
    "relu_encoder": dict(filters=(4, 8), encoder_activation="relu", negative_slope=0.1),
    "no_skips": dict(filters=(4, 8, 16), skip_connections=False),
    "kernel_4": dict(filters=(4, 8), kernel_size=4),
    "kernel_3_stride_3": dict(filters=(4, 8), kernel_size=3, strides=3, bins=27, frames=18),
    "one_stage": dict(filters=(4,)),
    "three_mono": dict(filters=(4, 8), instruments=("a", "b", "c"), channels=1),
}


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_inference_plan_equals_keras_model(variant, jit_compile):
    config = dict(bins=32, frames=32)
    config.update(VARIANTS[variant])
    net = randomise(UNetSeparator(**config), seed=len(variant))
    rng = np.random.default_rng(1)
    frames = 2 * config["frames"]  # any multiple works, not only the chunk length
    x = rng.uniform(0, 2, (2, frames, config["bins"], net.channels)).astype("float32")
    expected = net(x, training=False)
    plan = inference_plan(net, jit_compile=jit_compile)
    got = tf.function(plan, autograph=False)(x)
    assert sorted(got) == sorted(net.instruments)
    for name in net.instruments:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), rtol=2e-5, atol=2e-6)


FORMS = [
    {"encoder": "patches", "decoder": "native"},
    {"decoder": "phases"},
    {"decoder": "merged"},
    {"decoder": "taps"},
    {"encoder": ["conv", "patches", "conv", "patches", "patches"], "decoder": ["taps", "native", "phases", "merged", "native"]},
]


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("forms", FORMS, ids=lambda f: "-".join(f"{k}={v if isinstance(v, str) else 'mixed'}" for k, v in f.items()))
def test_every_operator_form_equals_keras_model(forms, jit_compile):
    net = randomise(UNetSeparator(bins=32, frames=32, **VARIANTS["all_plans"]), seed=6)
    x = np.random.default_rng(4).uniform(0, 2, (2, 64, 32, net.channels)).astype("float32")
    expected = net(x, training=False)
    plan = inference_plan(net, jit_compile=jit_compile, forms=forms)
    for key, value in forms.items():
        wanted = [value] * 5 if isinstance(value, str) else value
        got_forms = plan.forms[key][:-1] if key == "decoder" and jit_compile else plan.forms[key]
        assert got_forms == (wanted[:-1] if key == "decoder" and jit_compile else wanted)
    got = tf.function(plan, autograph=False)(x)
    for name in net.instruments:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("forms", [None, FORMS[0], FORMS[-1]], ids=["default", "native_patches", "mixed"])
def test_bfloat16_plan_stays_within_bfloat16_rounding(forms, jit_compile):
    net = randomise(UNetSeparator(bins=32, frames=32, **VARIANTS["all_plans"]), seed=6)
    x = np.random.default_rng(4).uniform(0, 2, (2, 64, 32, net.channels)).astype("float32")
    expected = net(x, training=False)
    plan = inference_plan(net, jit_compile=jit_compile, forms=forms, compute_dtype="bfloat16")
    assert plan.first_kernel.dtype == tf.bfloat16
    got = tf.function(plan, autograph=False)(x)
    for name in net.instruments:
        ours, reference = np.asarray(got[name]), np.asarray(expected[name])
        assert ours.dtype == np.float32
        error = np.abs(ours - reference).max() / np.abs(reference).max()
        # bfloat16 rounding shows (float32 would be ~1e-6) but stays small.
        assert 1e-4 < error < 3e-2, error


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bfloat16_plan_fuses_steps_for_every_variant(variant):
    """bfloat16 with XLA fuses the element-wise steps between convolutions
    (a separate code path from float32's): every architecture still works."""
    config = dict(bins=32, frames=32)
    config.update(VARIANTS[variant])
    net = randomise(UNetSeparator(**config), seed=len(variant))
    x = np.random.default_rng(1).uniform(0, 2, (2, 2 * config["frames"], config["bins"], net.channels)).astype("float32")
    expected = net(x, training=False)
    plan = inference_plan(net, compute_dtype="bfloat16")
    assert plan.fuse_steps and not inference_plan(net).fuse_steps
    got = tf.function(plan, autograph=False)(x)
    for name in net.instruments:
        ours, reference = np.asarray(got[name]), np.asarray(expected[name])
        assert np.abs(ours - reference).max() < 3e-2 * np.abs(reference).max()


def test_unknown_compute_dtype():
    net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    with pytest.raises(ValueError, match="'float16'"):
        inference_plan(net, compute_dtype="float16")


@pytest.mark.parametrize("forms, message", [
    ({"encoder": "winograd"}, "forms\\['encoder'\\]"),
    ({"decoder": ["native"]}, "list of 2"),
    ({"mask": "conv"}, "keys 'encoder' and 'decoder'"),
])
def test_bad_forms(forms, message):
    net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    with pytest.raises(ValueError, match=message):
        inference_plan(net, forms=forms)


def test_choice_of_transposed_convolution():
    assert [plan_forms.choose_transpose(c) for c in (512, 64, 32, 16, 1)] == [
        "phases", "phases", "native", "merged", "merged"]


@pytest.mark.parametrize("jit_compile", [True, False])
def test_plan_traced_with_unknown_sizes(jit_compile):
    """Static sizes shorten the traced graph; unknown ones must still work."""
    net = randomise(UNetSeparator(filters=(8, 16, 32, 64, 128), bins=32, frames=32), seed=2)
    x = np.random.default_rng(3).uniform(0, 2, (2, 64, 32, net.channels)).astype("float32")
    plan = inference_plan(net, jit_compile=jit_compile)
    traced = tf.function(plan, autograph=False, input_signature=[tf.TensorSpec((None, None, None, net.channels))])
    got, expected = traced(x), net(x, training=False)
    for name in net.instruments:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("jit_compile, last", [(True, "head"), (False, "merged")])
def test_last_transposed_convolution_joins_the_xla_head(jit_compile, last):
    net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    plan = inference_plan(net, jit_compile=jit_compile)
    modes = [decoder[0] for decoder in plan.plans["vocals"][1]]
    assert modes == plan.forms["decoder"] == [plan_forms.choose_transpose(4), last]


def test_plan_is_a_snapshot_of_the_weights():
    net = randomise(UNetSeparator(filters=(4, 8), bins=16, frames=16), seed=3)
    x = np.random.default_rng(0).uniform(0, 1, (1, 16, 16, 2)).astype("float32")
    before = inference_plan(net)
    old = np.asarray(net(x, training=False)["vocals"])
    randomise(net, seed=4)
    new = np.asarray(net(x, training=False)["vocals"])
    np.testing.assert_allclose(np.asarray(before(x)["vocals"]), old, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(np.asarray(inference_plan(net)(x)["vocals"]), new, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("extension", ["zeros", "average"])
def test_fast_separator_equals_keras_layers(extension):
    keras.utils.set_random_seed(5)
    net = randomise(UNetSeparator(filters=(4, 8, 16), bins=32, frames=32), seed=9)
    model = WaveformSeparator(net, sample_rate=8000, frame_length=128, frame_step=32,
                              overlap_frames=8, mask_extension=extension)
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, (5000, 2)).astype("float32")
    fast = Separator(model, fast=True).separate(wave, sample_rate=8000)
    plain = Separator(model, fast=False).separate(wave, sample_rate=8000)
    for name in model.instruments:
        scale = np.abs(plain[name]).max()
        np.testing.assert_allclose(fast[name], plain[name], atol=1e-5 * scale)


def test_bfloat16_separator_stays_close_to_float32():
    net = randomise(UNetSeparator(filters=(4, 8, 16), bins=32, frames=32), seed=9)
    model = WaveformSeparator(net, sample_rate=8000, frame_length=128, frame_step=32, overlap_frames=8)
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, (5000, 2)).astype("float32")
    half = Separator(model, precision="bfloat16").separate(wave, sample_rate=8000)
    full = Separator(model).separate(wave, sample_rate=8000)
    for name in model.instruments:
        assert half[name].dtype == np.float32 and half[name].shape == full[name].shape
        snr = 10 * np.log10(np.sum(full[name] ** 2) / np.sum((full[name] - half[name]) ** 2))
        assert 30 < snr < 90, snr


def test_bad_precision_settings():
    net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    model = WaveformSeparator(net, sample_rate=8000, frame_length=64, frame_step=16, overlap_frames=4)
    with pytest.raises(ValueError, match="precision must be one of"):
        Separator(model, precision="float16")
    with pytest.raises(ValueError, match="needs fast=True"):
        Separator(model, precision="bfloat16", fast=False)
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = WaveformSeparator(UNetSeparator(filters=(4, 8), bins=16, frames=16), sample_rate=8000,
                                  frame_length=64, frame_step=16, overlap_frames=4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    with pytest.raises(ValueError, match="needs a float32 network"):
        Separator(mixed, precision="bfloat16")


def test_mixed_precision_model_uses_the_keras_layers():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model = WaveformSeparator(net, sample_rate=8000, frame_length=64, frame_step=16, overlap_frames=4)
    sep = Separator(model)
    assert sep._pipelines.network(1) is None
    stems = sep.separate(np.zeros((700, 2), "float32"), sample_rate=8000)
    assert stems["vocals"].dtype == np.float32 and stems["vocals"].shape == (700, 2)


def test_misspelt_argument_is_an_error():
    """Keras' functional models swallow unknown keyword arguments; ours do not."""
    with pytest.raises(TypeError, match=r"unknown arguments \['filterz'\]"):
        UNetSeparator(filters=(4, 8), filterz=(4, 8), bins=32, frames=16)
    net = UNetSeparator(filters=(4, 8), bins=32, frames=16, name="named", trainable=False)
    assert net.name == "named" and UNetSeparator.from_config(net.get_config()).filters == (4, 8)


def test_fused_steps_trace_once_per_stage_without_retracing_warnings(caplog):
    """Every stage's fused step is its own function: TensorFlow counts traces
    per code object, and one function traced for six stage shapes plus the
    probe's warned about excessive retracing on every command line run."""
    net = randomise(UNetSeparator(filters=(4, 8, 16, 32, 64, 128), bins=64, frames=64), seed=4)
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        plan = inference_plan(net, fuse_steps=True)
        for frames in (64, 128):
            plan(np.random.default_rng(frames).uniform(size=(1, frames, 64, 2)).astype(np.float32))
    assert plan.fuse_steps
    assert not [r for r in caplog.records if "retracing" in r.getMessage()]
