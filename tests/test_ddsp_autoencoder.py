"""DDSPAutoencoder and its MFCC layer: shapes at any batch and length, a
numpy reference with the decoder's output fixed, .keras round trips, one
training step, argument checks."""
import keras
import numpy as np
import pytest
import scipy.fft
import tensorflow as tf
from layer_checks import check_layer

from keras_sep.layers import MFCC
from keras_sep.losses import MultiScaleSpectralLoss
from keras_sep.models import DDSPAutoencoder, ddsp_autoencoder

RATE, STEP = 16000, 64
SMALL = dict(hidden_units=8, gru_units=8, mlp_layers=1, harmonics=8, noise_bands=9, reverb_length=32)


def _controls(batch=2, frames=20, f0=(200.0, 400.0)):
    glide = np.linspace(*f0, frames, dtype="float32")
    return {"f0_hz": np.tile(glide[None, :, None], (batch, 1, 1)),
            "loudness_db": np.full((batch, frames, 1), -30.0, "float32")}


def _exp_sigmoid(x):
    return 2.0 * (1.0 / (1.0 + np.exp(-x))) ** np.log(10.0) + 1e-7


def test_any_batch_and_length():
    model = ddsp_autoencoder(noise_seed=0, **SMALL)
    assert model(_controls(1, 10)).shape == (1, 640, 1)
    assert model(_controls(3, 7)).shape == (3, 448, 1)
    assert model.output_shape == (None, None, 1)


def test_fixed_decoder_output_is_a_numpy_harmonic_synthesis():
    """With the last dense layer's kernel zeroed its bias is every frame's raw
    controls; the noise is silenced by a very negative bias and the reverb by
    a zero response, leaving a sum of sines at k * f0."""
    model = ddsp_autoencoder(noise_seed=0, **SMALL)
    harmonics = SMALL["harmonics"]
    raw_amplitude, raw_distribution = 0.7, np.linspace(-2.0, 1.0, harmonics)
    dense = model.get_layer("controls")
    bias = np.concatenate([[raw_amplitude], raw_distribution, np.full(SMALL["noise_bands"], -1e3)])
    dense.set_weights([np.zeros_like(dense.get_weights()[0]), bias.astype("float32")])
    model.get_layer("reverb").set_weights([np.zeros(SMALL["reverb_length"], "float32")])
    controls = _controls(1, 20)
    audio = model(controls).numpy()[0, :, 0]

    f0 = controls["f0_hz"][0, :, 0].astype(np.float64)
    f0_audio = np.interp(np.arange(20 * STEP) / STEP, np.arange(20), f0)  # holds the last frame
    phase = np.cumsum(2 * np.pi * f0_audio / RATE)
    distribution = _exp_sigmoid(raw_distribution)
    amplitudes = _exp_sigmoid(raw_amplitude) * distribution / distribution.sum()
    reference = sum(a * np.sin((k + 1) * phase) for k, a in enumerate(amplitudes))
    np.testing.assert_allclose(audio, reference, atol=2e-4)


def test_keras_round_trip(tmp_path):
    model = ddsp_autoencoder(noise_seed=3, **SMALL)
    controls = _controls()
    expected = model(controls).numpy()
    model.save(tmp_path / "ddsp.keras")
    loaded = keras.models.load_model(tmp_path / "ddsp.keras")
    assert isinstance(loaded, DDSPAutoencoder) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(controls).numpy(), expected, atol=1e-6)


def test_latent_from_mfccs_round_trip(tmp_path):
    model = ddsp_autoencoder(noise_seed=1, z_units=4, z_gru_units=8, mfccs=10, mfcc_fft_size=256, mel_bins=20,
                             **SMALL)
    inputs = dict(_controls(2, 12), audio=np.random.default_rng(0).normal(size=(2, 12 * STEP, 1)).astype("float32"))
    expected = model(inputs).numpy()
    assert expected.shape == (2, 12 * STEP, 1)
    model.save(tmp_path / "z.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "z.keras")(inputs).numpy(), expected, atol=1e-5)
    # z is the dense layer's map of the GRU's state (numpy reference), and
    # the audio reaches the output through z only: with z held at zero,
    # the audio's output is the silent input's.
    gru = keras.Model(model.inputs, model.get_layer("z_gru").output)(inputs).numpy()
    z = keras.Model(model.inputs, model.get_layer("z_dense").output)(inputs).numpy()
    kernel, bias = (w.numpy() for w in model.get_layer("z_dense").weights)
    np.testing.assert_allclose(z, gru @ kernel + bias, rtol=1e-5, atol=1e-5)
    for weight in model.get_layer("z_dense").weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    silent = model(dict(inputs, audio=inputs["audio"] * 0)).numpy()
    np.testing.assert_allclose(model(inputs).numpy(), silent, atol=1e-6)


def test_one_training_step_lowers_the_spectral_loss():
    keras.utils.set_random_seed(0)
    controls = _controls(2, 40, f0=(300.0, 300.0))
    t = np.arange(40 * STEP) / RATE
    target = np.tile((0.3 * np.sin(2 * np.pi * 300 * t) + 0.1 * np.sin(2 * np.pi * 900 * t))[None, :, None],
                     (2, 1, 1)).astype("float32")
    model = ddsp_autoencoder(noise_seed=0, **SMALL)
    loss = MultiScaleSpectralLoss(fft_sizes=(512, 256, 128, 64), epsilon=0.1)
    model.compile(keras.optimizers.Adam(1e-2), loss)
    before = float(loss(target, model(controls)))
    model.train_on_batch(controls, target)
    after = float(loss(target, model(controls)))
    assert after < before - 1e-3, (before, after)


@pytest.mark.parametrize("kwargs", [dict(harmonics=0), dict(noise_bands=1), dict(reverb_length=-1),
                                    dict(z_units=0), dict(gru_units=2.5)])
def test_bad_sizes_raise(kwargs):
    with pytest.raises(ValueError, match="got"):
        ddsp_autoencoder(**kwargs)


def test_unknown_argument_raises():
    with pytest.raises(TypeError, match="hidden_unit"):
        ddsp_autoencoder(hidden_unit=8)


def test_mfcc_layer_checks(tmp_path):
    audio = np.random.default_rng(1).normal(size=(2, 640, 1)).astype("float32")
    check_layer(MFCC, dict(sample_rate=RATE, frame_step=STEP, mfccs=5, fft_size=128, mel_bins=16), audio,
                (2, 10, 5), tmp_path=tmp_path, train=False)


def test_mfcc_matches_numpy():
    rng = np.random.default_rng(2)
    audio = rng.normal(size=(1, 1280)).astype("float32")
    fft, step, bins, count = 256, STEP, 24, 12
    padded = np.pad(audio[0], fft // 2)
    frames = np.stack([padded[i * step : i * step + fft] for i in range(1280 // step)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(fft) / fft)
    magnitude = np.abs(np.fft.rfft(frames * window))
    mel = tf.signal.linear_to_mel_weight_matrix(bins, fft // 2 + 1, RATE, 20.0, RATE / 2).numpy()
    log_mel = np.log(magnitude @ mel + 1e-6)
    reference = scipy.fft.dct(log_mel, type=2, axis=-1)[:, :count] / np.sqrt(2 * bins)
    out = MFCC(RATE, step, count, fft, bins)(audio[..., None]).numpy()[0]
    np.testing.assert_allclose(out, reference, rtol=1e-3, atol=1e-3)


def test_mixed_precision_keeps_the_synthesis_in_float32():
    model = ddsp_autoencoder(noise_seed=2, **SMALL)
    controls = _controls()
    expected = model(controls).numpy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = ddsp_autoencoder(noise_seed=2, **SMALL)
        mixed.set_weights(model.get_weights())
        out = mixed(controls)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == "float32" and mixed.get_layer("decoder_gru").compute_dtype == "float16"
    np.testing.assert_allclose(out.numpy(), expected, atol=0.02 * np.abs(expected).max())
