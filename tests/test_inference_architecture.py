"""The inference plan follows each block's configuration, refuses what it does
not know, and is checked against the Keras model when it is made."""
import logging

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sep.inference import UNetInference, has_inference_plan, inference_plan
from keras_sep.inference import plan as plan_module
from keras_sep.layers import Conv2DBlock, Conv2DTransposeBlock
from keras_sep.models import UNetSeparator
from test_unet_inference import randomise


def custom_unet(encoder_order="bn_act", decoder_order="act_bn", decoder_batch_norm=True, use_bias=True,
                raw_bottom=True, skips=True, activation="elu"):
    """A two-stage U-Net separator written by hand, with layer names that
    mean nothing and block options UNetSeparator does not offer."""
    inputs = keras.Input(shape=(None, 16, 2))
    outputs = {}
    for n, name in enumerate(("drums", "rest")):
        x, raw0 = Conv2DBlock(4, kernel_size=3, order=encoder_order, activation=activation,
                              return_conv_output=True, name=f"q{n}a")(inputs)
        post, raw1 = Conv2DBlock(8, kernel_size=3, activation="relu" if not raw_bottom else "linear",
                                 batch_norm=not raw_bottom, return_conv_output=True, name=f"q{n}b")(x)
        x = Conv2DTransposeBlock(4, kernel_size=3, order=decoder_order, activation="leaky_relu", negative_slope=0.3,
                                 batch_norm=decoder_batch_norm, use_bias=use_bias, dropout=0.5,
                                 name=f"q{n}c")(raw1 if raw_bottom else post)
        if skips:
            x = keras.layers.Concatenate(name=f"q{n}d")([raw0, x])
        x = Conv2DTransposeBlock(1, kernel_size=3, activation=activation, name=f"q{n}e")(x)
        mask = keras.layers.Conv2D(2, 3, dilation_rate=2, padding="same", activation="sigmoid", name=f"q{n}f")(x)
        outputs[name] = keras.layers.Multiply(name=f"q{n}g")([mask, inputs])
    return keras.Model(inputs, outputs)


def assert_plan_equals_model(net, jit_compile=True, **kwargs):
    assert has_inference_plan(net)
    plan = inference_plan(net, jit_compile=jit_compile, **kwargs)
    bins = net.inputs[0].shape[2]
    x = np.random.default_rng(7).uniform(0, 2, (2, 16, bins, 2)).astype("float32")
    expected, got = net(x, training=False), tf.function(plan, autograph=False)(x)
    assert sorted(got) == sorted(expected)
    for name in expected:
        np.testing.assert_allclose(np.asarray(got[name]), np.asarray(expected[name]), rtol=2e-5, atol=2e-6)
    return plan


CUSTOM = {
    "default": {},
    "encoder_act_bn": dict(encoder_order="act_bn"),
    "decoder_bn_act": dict(decoder_order="bn_act"),
    "decoder_without_batch_norm_or_bias": dict(decoder_batch_norm=False, use_bias=False),
    "bottom_block_output": dict(raw_bottom=False),
    "no_skips_leaky": dict(skips=False, activation="leaky_relu"),
}


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("variant", sorted(CUSTOM))
def test_plan_follows_each_blocks_configuration(variant, jit_compile):
    net = randomise(custom_unet(**CUSTOM[variant]), seed=len(variant))
    assert_plan_equals_model(net, jit_compile=jit_compile)


def test_plan_follows_a_changed_order_in_a_unet_separator():
    """The order is read from the blocks, not assumed: swap it in every
    decoder and encoder block of a UNetSeparator, and the plan follows."""
    net = randomise(UNetSeparator(filters=(4, 8), bins=16, frames=16), seed=1)
    x = np.random.default_rng(0).uniform(0, 2, (1, 8, 16, 2)).astype("float32")
    before = np.asarray(net(x, training=False)["vocals"])
    for layer in net.layers:
        if isinstance(layer, (Conv2DBlock, Conv2DTransposeBlock)):
            layer.order = {"bn_act": "act_bn", "act_bn": "bn_act"}[layer.order]
    assert np.abs(np.asarray(net(x, training=False)["vocals"]) - before).max() > 1e-3
    for fuse_steps in (False, True):
        assert_plan_equals_model(net, fuse_steps=fuse_steps)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_plan_shares_logits_out_by_a_softmax_across_instruments(jit_compile):
    """Spleeter's 5-stem head: linear heads whose logits one softmax across
    the instruments turns into masks that add up to one."""
    net = randomise(UNetSeparator(("a", "b", "c"), filters=(4, 8), bins=16, frames=16, encoder_activation="elu",
                                  decoder_activation="elu", mask_activation="softmax"), seed=5)
    plan = assert_plan_equals_model(net, jit_compile=jit_compile)
    assert plan.mask_activation == "softmax"
    x = np.random.default_rng(1).uniform(0, 2, (1, 16, 16, 2)).astype("float32")
    np.testing.assert_allclose(sum(np.asarray(v) for v in plan(x).values()), x, rtol=1e-5)


def test_plan_checks_a_wrong_softmax_head_on_the_probe(monkeypatch):
    """A plan that took the softmax heads for sigmoid ones is off by order
    one on the probe and refuses to be made."""
    net = UNetSeparator(("a", "b"), filters=(4, 8), bins=16, frames=16, mask_activation="softmax")
    original = plan_module.read_unet

    def as_sigmoid(model):
        import dataclasses

        return dataclasses.replace(original(model), mask_activation="sigmoid")

    monkeypatch.setattr(plan_module, "read_unet", as_sigmoid)
    with pytest.raises(ValueError, match="differs from the Keras model"):
        UNetInference(net, jit_compile=False)


def unknown_activation(net):
    block = next(layer for layer in net.layers if isinstance(layer, Conv2DTransposeBlock))
    block.activation = "gelu"
    block._activation_fn = keras.ops.gelu
    return net


def extra_layer():
    inputs = keras.Input(shape=(None, 16, 2))
    x, raw = Conv2DBlock(4, kernel_size=3, return_conv_output=True)(inputs)
    x = Conv2DTransposeBlock(4, kernel_size=3)(keras.layers.Activation("tanh")(raw))
    mask = keras.layers.Conv2D(2, 3, padding="same", activation="sigmoid")(x)
    return keras.Model(inputs, {"only": keras.layers.Multiply()([mask, inputs])})


def tanh_mask():
    net = custom_unet()
    head = next(layer for layer in net.layers if type(layer) is keras.layers.Conv2D)
    head.activation = keras.activations.tanh
    return net


def partial_softmax():
    from keras_sep.models.unet_separator import _InstrumentSoftmax

    net = UNetSeparator(("a", "b", "c"), filters=(4, 8), bins=16, frames=16, mask_activation="softmax")
    inputs = net.inputs[0]
    masks = _InstrumentSoftmax()([net.get_layer(f"{name}_mask").output for name in ("a", "b", "c")])
    return keras.Model(inputs, {name: keras.layers.Multiply()([masks[i], inputs]) for i, name in ((0, "a"), (2, "c"))})


REFUSED = {
    "unknown activation": (lambda: unknown_activation(UNetSeparator(filters=(4, 8), bins=16, frames=16)), "'gelu'"),
    "extra layer": (extra_layer, "found Activation"),
    "mask activation": (tanh_mask, "'tanh'"),
    "mixed precision": (None, "float16"),
    # A softmax across three instruments' logits of which only two are outputs.
    "softmax over a missing output": (lambda: partial_softmax(), "spans 3 logits, read at [0, 2]"),
    "not functional": (lambda: keras.Sequential([keras.layers.Dense(2)]), "one input and a dict of outputs"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unknown_architecture_is_refused_with_the_reason(case, caplog):
    make, reason = REFUSED[case]
    if make is None:
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
        finally:
            keras.mixed_precision.set_global_policy("float32")
    else:
        net = make()
    with caplog.at_level(logging.DEBUG, logger="keras_sep.inference.plan"):
        assert not has_inference_plan(net)
    assert reason in caplog.text
    assert inference_plan(net) is None
    with pytest.raises(ValueError, match="no inference plan for"):
        UNetInference(net)


def test_elu_unet_has_a_plan_equal_to_the_model():
    """Spleeter's 4-stem arrangement: ELU in encoder and decoder."""
    net = UNetSeparator(("vocals", "drums", "bass", "other"), filters=(4, 8, 16), bins=32, frames=32,
                        encoder_activation="elu", decoder_activation="elu")
    assert_plan_equals_model(randomise(net, seed=5))


def flipped_transpose(real):
    def wrong(form, x, kernel, prepared, strides):
        # The native form with the kernel flipped: same shapes, wrong values.
        return real("native", x, tf.reverse(kernel, [0, 1]), None, strides)
    return wrong


def no_batch_norm(real):
    def wrong(step):
        apply = real(step)
        return lambda x, scale, shift: apply(x, None, None)
    return staticmethod(wrong)


@pytest.mark.parametrize("corruption", ["transpose", "batch norm"])
def test_corrupted_plan_is_caught_by_the_probe(corruption, monkeypatch):
    net = randomise(UNetSeparator(filters=(4, 8, 16), bins=32, frames=32), seed=2)
    if corruption == "transpose":
        monkeypatch.setattr(plan_module, "transpose", flipped_transpose(plan_module.transpose))
    else:
        monkeypatch.setattr(plan_module.Steps, "step_function", no_batch_norm(plan_module.Steps.step_function))
    with pytest.raises(ValueError, match="differs from the Keras model .* on a probe input"):
        inference_plan(net, jit_compile=False)
    monkeypatch.undo()
    assert_plan_equals_model(randomise(UNetSeparator(filters=(4, 8, 16), bins=32, frames=32), seed=2))


def test_probe_tolerance_is_relative_to_the_output(monkeypatch):
    """A tiny error passes at any output scale; one above the tolerance fails."""
    net = randomise(UNetSeparator(filters=(4, 8), bins=16, frames=16), seed=3)
    real = plan_module.UNetInference.__call__

    def off_by(factor):
        return lambda self, x: {k: v * (1 + factor) for k, v in real(self, x).items()}

    monkeypatch.setattr(plan_module.UNetInference, "__call__", off_by(1e-5))
    UNetInference(net)
    monkeypatch.setattr(plan_module.UNetInference, "__call__", off_by(1e-3))
    with pytest.raises(ValueError, match="tolerance 0.0001"):
        UNetInference(net)


def test_models_do_not_import_the_plan():
    """Imports go downwards: the plan reads models, models never name it."""
    import pathlib
    import re

    import keras_sep.models

    folder = pathlib.Path(keras_sep.models.__file__).parent
    upward = re.compile(r"^\s*(from|import)\s+keras_sep\.inference", re.MULTILINE)
    offenders = [p.name for p in folder.glob("*.py") if upward.search(p.read_text())]
    assert offenders == [] and not hasattr(UNetSeparator, "inference_function")
