"""HarmonicSynth, FilteredNoise and Reverb: the shared layer checks, the
controls-to-signal split against the ops, and short fits with the
multi-scale spectral loss."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_layer

from keras_sep.layers import FilteredNoise, HarmonicSynth, Reverb
from keras_sep.losses import MultiScaleSpectralLoss
from keras_sep.ops import filtering, synthesis

RNG = np.random.default_rng(7)


def _synth_inputs(batch=2, frames=6, harmonics=8):
    return [
        RNG.uniform(100, 900, (batch, frames, 1)).astype("float32"),
        RNG.normal(size=(batch, frames, 1)).astype("float32"),
        RNG.normal(size=(batch, frames, harmonics)).astype("float32"),
    ]


def test_harmonic_synth_layer_checks(tmp_path):
    outputs, mixed = check_layer(
        HarmonicSynth, {"sample_rate": 8000, "frame_step": 16}, _synth_inputs(), (2, 96, 1),
        tmp_path=tmp_path, atol=1e-5)
    assert mixed[0].dtype == "float32"  # synthesis stays float32 under mixed_float16
    np.testing.assert_allclose(np.asarray(mixed[0]), np.asarray(outputs[0]), atol=1e-6)


def test_harmonic_synth_is_controls_then_signal():
    f0, amp, dist = _synth_inputs()
    layer = HarmonicSynth(sample_rate=8000, frame_step=16)
    controls = layer.get_controls(f0, amp, dist)
    expected_amps = synthesis.harmonic_amplitudes(
        synthesis.exp_sigmoid(amp), synthesis.exp_sigmoid(dist), f0, 8000)
    np.testing.assert_allclose(controls["amplitudes"], expected_amps, rtol=1e-6)
    np.testing.assert_allclose(np.sum(controls["amplitudes"], -1, keepdims=True),
                               synthesis.exp_sigmoid(amp) * (np.sum(np.asarray(expected_amps), -1, keepdims=True) > 0),
                               rtol=1e-5)
    np.testing.assert_allclose(layer([f0, amp, dist]),
                               synthesis.harmonic_synthesis(f0, expected_amps, 8000, 16), atol=1e-6)


def test_filtered_noise_layer_checks(tmp_path):
    outputs, mixed = check_layer(
        FilteredNoise, {"frame_step": 16, "seed": 3}, RNG.normal(size=(2, 5, 17)).astype("float32"),
        (2, 80, 1), tmp_path=tmp_path, atol=1e-6)
    np.testing.assert_allclose(np.asarray(mixed[0]), np.asarray(outputs[0]), atol=1e-6)


def test_filtered_noise_scaling_and_noise():
    raw = RNG.normal(size=(1, 4, 9)).astype("float32")
    layer = FilteredNoise(frame_step=8, seed=5)
    magnitudes = layer.get_controls(raw)["magnitudes"]
    np.testing.assert_allclose(magnitudes, synthesis.exp_sigmoid(raw - 5.0), rtol=1e-6)
    noise = tf.random.stateless_uniform([1, 32, 1], [5, 0], -1.0, 1.0)
    np.testing.assert_allclose(layer(raw), filtering.filtered_noise(magnitudes, 8, noise=noise), atol=1e-7)
    unseeded = FilteredNoise(frame_step=8)
    assert not np.array_equal(unseeded(raw), unseeded(raw))  # fresh noise at each call


def test_reverb_layer_checks(tmp_path):
    audio = RNG.normal(size=(2, 200, 1)).astype("float32")
    kwargs = {"length": 32, "initializer": keras.initializers.RandomNormal(stddev=0.1, seed=1)}
    outputs, mixed = check_layer(Reverb, kwargs, audio, (2, 200, 1), expected_trainable_weights=1,
                                 tmp_path=tmp_path, atol=1e-5)
    np.testing.assert_allclose(np.asarray(mixed[0]), np.asarray(outputs[0]), atol=1e-5)


def test_reverb_masks_tap_zero_only_with_a_dry_path():
    audio = RNG.normal(size=(1, 64, 1)).astype("float32")
    ir = np.zeros(8, "float32")
    ir[0] = 1.0
    ir[3] = 0.5
    wet = Reverb(length=8, add_dry=False, initializer=keras.initializers.Constant(ir))(audio)
    expected = np.convolve(audio[0, :, 0], ir)[:64]
    np.testing.assert_allclose(wet[0, :, 0], expected, atol=1e-5)
    both = Reverb(length=8, initializer=keras.initializers.Constant(ir))(audio)
    ir[0] = 0.0
    np.testing.assert_allclose(both[0, :, 0], audio[0, :, 0] + np.convolve(audio[0, :, 0], ir)[:64], atol=1e-5)


def test_fitting_a_reverb_with_the_multi_scale_loss():
    sr_audio = RNG.normal(size=(4, 1024, 1)).astype("float32") * 0.3
    true_ir = np.zeros(64, "float32")
    true_ir[[5, 20, 41]] = [0.6, -0.4, 0.3]
    target = filtering.reverb(sr_audio, true_ir).numpy()
    inputs = keras.Input((None, 1))
    model = keras.Model(inputs, Reverb(length=64)(inputs))
    model.compile(keras.optimizers.Adam(0.03), loss=MultiScaleSpectralLoss(fft_sizes=(256, 128, 64)))
    before = model.evaluate(sr_audio, target, verbose=0)
    model.fit(sr_audio, target, epochs=60, batch_size=4, verbose=0)
    after = model.evaluate(sr_audio, target, verbose=0)
    assert after < 0.5 * before, (before, after)


def test_fitting_harmonic_amplitudes_with_the_multi_scale_loss():
    sr, step, frames = 8000, 32, 16
    f0 = np.full((1, frames, 1), 250.0, "float32")
    layer = HarmonicSynth(sample_rate=sr, frame_step=step)
    target = layer([f0, np.full((1, frames, 1), 1.0, "float32"),
                    np.tile(np.array([2.0, -2.0, 1.0, -3.0], "float32"), (1, frames, 1))])
    raw_amp = tf.Variable(np.zeros((1, frames, 1), "float32"))
    raw_dist = tf.Variable(np.zeros((1, frames, 4), "float32"))
    # A clean synthetic tone leaves most bins at float32 rounding level in both
    # signals, where an L1 on log magnitudes floored at 1e-5 sits on its kink and
    # its gradient says nothing; recordings have a noise floor above that. A floor
    # of 0.1 (the harmonics' peaks are ~10-100) keeps the log term meaningful.
    loss_fn = MultiScaleSpectralLoss(fft_sizes=(256, 128, 64), epsilon=0.1)
    optimizer = keras.optimizers.Adam(0.05)
    losses = []
    for _ in range(30):
        with tf.GradientTape() as tape:
            loss = loss_fn(target, layer([f0, raw_amp, raw_dist]))
        optimizer.apply(tape.gradient(loss, [raw_amp, raw_dist]), [raw_amp, raw_dist])
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("cls, kwargs, match", [
    (HarmonicSynth, {"frame_step": 0}, "frame_step"),
    (HarmonicSynth, {"sample_rate": -1}, "sample_rate"),
    (FilteredNoise, {"window_size": 2.5}, "window_size"),
    (Reverb, {"length": 0}, "length"),
])
def test_arguments_are_checked(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_synthesis_stays_float32_behind_a_float16_network():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        f0 = keras.Input((None, 1))
        features = keras.Input((None, 4))
        hidden = keras.layers.Dense(9)(features)  # float16 outputs
        assert hidden.dtype == "float16"
        audio = HarmonicSynth(sample_rate=8000, frame_step=16)([f0, hidden[..., :1], hidden[..., 1:]])
        audio = Reverb(length=8)(audio + FilteredNoise(frame_step=16, seed=0)(hidden))
        model = keras.Model([f0, features], audio)
    finally:
        keras.config.set_dtype_policy("float32")
    assert audio.dtype == "float32"
    out = model([np.full((2, 5, 1), 440.0, "float32"), RNG.normal(size=(2, 5, 4)).astype("float32")])
    assert out.dtype == "float32" and out.shape == (2, 80, 1)
    assert np.all(np.isfinite(np.asarray(out)))
