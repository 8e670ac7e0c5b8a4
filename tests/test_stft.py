"""STFT / ISTFT / Magnitude: layer checks and numerical references."""
import keras
import librosa
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_layer

from keras_sep.layers import ISTFT, STFT, Magnitude
from keras_sep.ops import spectra
from keras_sep.ops import stft as stft_ops


def noise(batch=2, samples=4000, channels=2, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, samples, channels)).astype(
        "float32"
    )


def numpy_stft(signal, frame_length, frame_step, fft_length, window):
    """Reference STFT of a 1-D signal: (frames, bins), frames taken from sample 0."""
    starts = range(0, len(signal) - frame_length + 1, frame_step)
    frames = np.stack([signal[s : s + frame_length] * window for s in starts])
    return np.fft.rfft(frames.astype("float64"), n=fft_length, axis=-1)


def relative_error(estimate, reference):
    return np.max(np.abs(estimate - reference)) / np.max(np.abs(reference))


# --- layer checks ------------------------------------------------------------


# check_layer's finiteness check casts outputs to float32; complex ones warn.
@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
@pytest.mark.parametrize(
    "output_format, channels, dtype",
    [("complex", 2, "complex64"), ("magnitude", 2, "float32"), ("real_imag", 4, "float32")],
)
def test_stft_layer_basics(tmp_path, output_format, channels, dtype):
    kwargs = dict(frame_length=64, frame_step=16, center=True, output_format=output_format)
    outputs, mp_outputs = check_layer(
        STFT, kwargs, noise(samples=512), (2, 33, 33, channels), tmp_path=tmp_path, atol=1e-5
    )
    assert outputs[0].dtype == dtype
    # Under mixed_float16 the transform is still float32.
    assert mp_outputs[0].dtype == dtype
    np.testing.assert_allclose(np.asarray(mp_outputs[0]), np.asarray(outputs[0]), atol=1e-5)


@pytest.mark.parametrize("input_format", ["complex", "real_imag"])
def test_istft_layer_basics(tmp_path, input_format):
    waveform = noise(samples=500)
    spec = STFT(64, 16, center=True, output_format=input_format)(waveform)
    kwargs = dict(frame_length=64, frame_step=16, center=True, input_format=input_format)
    outputs, mp_outputs = check_layer(
        ISTFT, kwargs, [np.asarray(spec), waveform], (2, 500, 2), tmp_path=tmp_path, atol=1e-5
    )
    np.testing.assert_allclose(np.asarray(outputs[0]), waveform, atol=1e-5)
    assert mp_outputs[0].dtype == "float32"
    # Without a reference: every sample the frames cover, less the padding.
    layer = ISTFT(**kwargs)
    assert tuple(layer(spec).shape) == (2, 496, 2)
    spec_channels = 4 if input_format == "real_imag" else 2
    assert layer.compute_output_shape((None, 32, 33, spec_channels)) == (None, 496, 2)
    assert layer.compute_output_shape((None, None, 33, spec_channels)) == (None, None, 2)
    assert tuple(layer(spec, length=600).shape) == (2, 600, 2)


def test_magnitude_layer_basics(tmp_path):
    spec = np.asarray(STFT(64, 16)(noise(samples=300)))
    outputs, mp_outputs = check_layer(
        Magnitude, {"power": 2.0}, spec, spec.shape, tmp_path=tmp_path, atol=1e-4
    )
    np.testing.assert_allclose(np.asarray(outputs[0]), np.abs(spec) ** 2, rtol=1e-5)
    assert mp_outputs[0].dtype == "float32"
    np.testing.assert_allclose(
        np.asarray(Magnitude(power=0.5)(spec)), np.abs(spec) ** 0.5, rtol=1e-5
    )


def test_layers_in_functional_model_with_complex_tensors(tmp_path):
    waveform = keras.Input((None, 2))
    spec = STFT(128, 32, center=True, name="stft")(waveform)
    assert spec.dtype == "complex64"
    magnitude = Magnitude(name="magnitude")(spec)
    restored = ISTFT(128, 32, center=True, name="istft")([spec, waveform])
    model = keras.Model(waveform, {"spec": spec, "magnitude": magnitude, "wave": restored})
    x = noise(samples=1000)
    out = model(x)
    np.testing.assert_allclose(np.asarray(out["wave"]), x, atol=1e-5)
    path = str(tmp_path / "stft_model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded(x[:1, :700])
    assert again["spec"].dtype == tf.complex64
    np.testing.assert_allclose(np.asarray(again["wave"]), x[:1, :700], atol=1e-5)


def test_mixed_precision_network_around_stft():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        waveform = keras.Input((None, 2))
        hidden = keras.layers.Dense(2)(waveform)
        spec = STFT(128, 32)(hidden)
        magnitude = Magnitude()(spec)
        out = keras.layers.Dense(3)(magnitude)
        model = keras.Model(waveform, [hidden, spec, magnitude, out])
        hidden, spec, magnitude, out = model(noise(samples=600))
    finally:
        keras.config.set_dtype_policy("float32")
    assert hidden.dtype == tf.float16 and out.dtype == tf.float16
    assert spec.dtype == tf.complex64 and magnitude.dtype == tf.float32
    # Same numbers as a float32 STFT of the float16 activations.
    expected = stft_ops.stft(tf.cast(hidden, tf.float32), 128, 32)
    np.testing.assert_allclose(np.asarray(spec), np.asarray(expected), atol=1e-5)


def test_invalid_arguments():
    for kwargs in (
        {"frame_length": 0},
        {"frame_step": -1},
        {"frame_length": 64, "fft_length": 32},
        {"window": "kaiser"},
        {"pad_mode": "edge"},
        {"output_format": "polar"},
    ):
        with pytest.raises(ValueError):
            STFT(**kwargs)
    with pytest.raises(ValueError):
        ISTFT(input_format="magnitude")
    with pytest.raises(ValueError):
        Magnitude(power=0)


# --- numerics ----------------------------------------------------------------


@pytest.mark.parametrize("frame_length, frame_step", [(512, 128), (4096, 1024)])
@pytest.mark.parametrize("center", [False, True])
def test_round_trip(frame_length, frame_step, center):
    x = noise(samples=4 * frame_length + 123)
    spec = stft_ops.stft(x, frame_length, frame_step, center=center)
    y = np.asarray(
        stft_ops.istft(spec, frame_length, frame_step, center=center, length=x.shape[1])
    )
    assert y.shape == x.shape
    if center:  # exact everywhere, as librosa
        assert relative_error(y, x) < 1e-5
    else:  # exact where all frames overlap (the ends are tapered)
        covered = stft_ops.istft_length(spec.shape[1], frame_length, frame_step)
        inner = slice(frame_length, covered - frame_length)
        assert relative_error(y[:, inner], x[:, inner]) < 1e-5


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_matches_librosa(pad_mode):
    x = noise(samples=3000)
    spec = np.asarray(stft_ops.stft(x, 512, 128, center=True, pad_mode=pad_mode))
    for b in range(2):
        for c in range(2):
            reference = librosa.stft(
                x[b, :, c], n_fft=512, hop_length=128, center=True, pad_mode=pad_mode
            )  # (bins, frames), periodic Hann
            assert relative_error(spec[b, :, :, c], reference.T) < 1e-5
            inverse = librosa.istft(reference, hop_length=128, n_fft=512, length=3000)
            one = spec[b : b + 1, :, :, c : c + 1]
            ours = stft_ops.istft(one, 512, 128, center=True, length=3000)
            np.testing.assert_allclose(np.asarray(ours)[0, :, 0], inverse, atol=1e-5)


@pytest.mark.parametrize(
    "window, fft_length, pad_end",
    [("hann", None, False), ("hamming", 128, False), ("boxcar", 100, True), (None, None, True)],
)
def test_matches_numpy_reference(window, fft_length, pad_end):
    x = noise(batch=1, samples=1000, channels=2)
    spec = np.asarray(stft_ops.stft(x, 80, 20, fft_length, window, pad_end=pad_end))
    n = np.arange(80)
    windows = {
        "hann": 0.5 - 0.5 * np.cos(2 * np.pi * n / 80),
        "hamming": 0.54 - 0.46 * np.cos(2 * np.pi * n / 80),
    }
    signal = np.pad(x[0], [[0, 80], [0, 0]]) if pad_end else x[0]
    assert spec.shape[1] == stft_ops.num_frames(1000, 80, 20, pad_end=pad_end)
    for c in range(2):
        reference = numpy_stft(signal[:, c], 80, 20, fft_length or 80, windows.get(window, 1.0))
        assert relative_error(spec[0, :, :, c], reference[: spec.shape[1]]) < 1e-5


def test_spleeter_path_is_exact_in_the_interior():
    frame_length, frame_step, n = 4096, 1024, 10000
    window = np.asarray(tf.signal.hann_window(frame_length, periodic=True), "float64")
    squared_sum = sum(np.roll(window**2, k * frame_step) for k in range(4))
    np.testing.assert_allclose(squared_sum, 1.5, atol=1e-6)  # Hann² at 75 % overlap

    x = noise(samples=n)
    padded = tf.pad(x, [[0, 0], [frame_length, 0], [0, 0]])
    spec = stft_ops.stft(padded, frame_length, frame_step, pad_end=True)
    assert spec.shape[2] == 2049
    # Spleeter's own calls, channel by channel, give the same spectrogram.
    direct = tf.signal.stft(
        tf.transpose(padded[0]),
        frame_length,
        frame_step,
        window_fn=lambda length, dtype: tf.signal.hann_window(length, True, dtype),
        pad_end=True,
    )
    np.testing.assert_allclose(
        np.asarray(spec[0]), np.asarray(tf.transpose(direct, [1, 2, 0])), atol=1e-4
    )
    wave = stft_ops.istft(spec, frame_length, frame_step, normalize=False) * 2 / 3
    wave = np.asarray(wave)[:, frame_length : frame_length + n]
    assert relative_error(wave, x) < 1e-5


def test_dynamic_batch_and_length_in_tf_function():
    stft_layer, istft_layer = STFT(256, 64, center=True), ISTFT(256, 64, center=True)

    @tf.function(input_signature=[tf.TensorSpec((None, None, 2), tf.float32)])
    def round_trip(waveform):
        spec = stft_ops.stft(waveform, 256, 64, pad_end=True)
        plain = stft_ops.istft(spec, 256, 64, length=tf.shape(waveform)[1])
        layered = istft_layer([stft_layer(waveform), waveform])
        return spec, plain, layered

    for batch, samples in [(1, 1000), (3, 1777)]:
        x = noise(batch=batch, samples=samples)
        spec, plain, layered = round_trip(x)
        assert spec.shape == (batch, -(-samples // 64), 129, 2)
        assert plain.shape == layered.shape == x.shape
        np.testing.assert_allclose(np.asarray(layered), x, atol=1e-5)
        np.testing.assert_allclose(np.asarray(plain)[:, 256:-256], x[:, 256:-256], atol=1e-5)


def test_helpers_and_gradient():
    x = tf.constant(noise(samples=700))
    spec = stft_ops.stft(x, 128, 32)
    rebuilt = spectra.to_complex(spectra.magnitude(spec), tf.math.angle(spec))
    np.testing.assert_allclose(np.asarray(rebuilt), np.asarray(spec), atol=1e-4)
    parts = spectra.to_real_imag(spec)
    assert parts.shape == spec.shape[:-1] + [4]
    np.testing.assert_array_equal(np.asarray(parts[..., 1]), np.imag(np.asarray(spec[..., 0])))
    np.testing.assert_array_equal(np.asarray(spectra.from_real_imag(parts)), np.asarray(spec))
    cut = stft_ops.fit_length(x, tf.constant(650))
    grown = stft_ops.fit_length(x, 800)
    assert cut.shape == (2, 650, 2) and grown.shape == (2, 800, 2)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(Magnitude()(STFT(128, 32)(x)))
    grad = tape.gradient(loss, x)
    assert grad.dtype == tf.float32 and np.all(np.isfinite(np.asarray(grad)))


# --- channels-first layout (the separator's path) -------------------------------


@pytest.mark.parametrize("center, pad_end", [(False, False), (True, False), (False, True)])
def test_channels_first_is_the_same_transform_without_transposes(center, pad_end):
    x = noise(samples=1500)
    spec = stft_ops.stft(x, 128, 32, center=center, pad_end=pad_end)
    first = stft_ops.stft(
        np.transpose(x, [0, 2, 1]), 128, 32, center=center, pad_end=pad_end, data_format="channels_first"
    )
    assert first.shape == (2, 2) + tuple(spec.shape[1:3])
    np.testing.assert_array_equal(np.asarray(first), np.transpose(np.asarray(spec), [0, 3, 1, 2]))
    for normalize in (True, False):
        wave = stft_ops.istft(spec, 128, 32, center=center, length=1400, normalize=normalize)
        wave_first = stft_ops.istft(
            first, 128, 32, center=center, length=1400, normalize=normalize, data_format="channels_first"
        )
        assert wave_first.shape == (2, 2, 1400)
        np.testing.assert_array_equal(np.asarray(wave_first), np.transpose(np.asarray(wave), [0, 2, 1]))
    with pytest.raises(ValueError, match="data_format must be one of .* got 'channels_middle'"):
        stft_ops.stft(x, 128, 32, data_format="channels_middle")


def numpy_overlap_add_inverse(spec, frame_length, frame_step, window):
    """Reference inverse of one channel ``(frames, bins)``: irfft, window, sum."""
    frames = np.fft.irfft(spec, n=frame_length, axis=-1) * window
    out = np.zeros((len(frames) - 1) * frame_step + frame_length)
    for i, frame in enumerate(frames):
        out[i * frame_step : i * frame_step + frame_length] += frame
    return out


def test_istft_takes_spectra_cut_at_a_cutoff():
    """Bins missing at the top count as zeros, as in the separator's
    spectrum cut at the network's cutoff."""
    x = noise(batch=1, samples=1000)
    spec = np.asarray(stft_ops.stft(x, 64, 16))
    cut = spec[:, :, :20]
    wave = np.asarray(stft_ops.istft(cut, 64, 16, normalize=False))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(64) / 64)
    padded = np.pad(cut[0].astype("complex128"), [[0, 0], [0, 33 - 20], [0, 0]])
    for c in range(2):
        reference = numpy_overlap_add_inverse(padded[:, :, c], 64, 16, window)
        np.testing.assert_allclose(wave[0, :, c], reference, atol=1e-5)
    with pytest.raises(ValueError, match="has 40 bins; fft_length=64 gives at most 33"):
        stft_ops.istft(np.zeros((1, 5, 40, 2), "complex64"), 64, 16)


def test_istft_is_tf_signal_inverse_stft_to_float32_rounding():
    """The faster overlap-add changes nothing but rounding."""
    x = noise(samples=3000)
    spec = stft_ops.stft(x, 256, 64, fft_length=300)
    ours = np.asarray(stft_ops.istft(spec, 256, 64, fft_length=300, normalize=False))
    direct = tf.signal.inverse_stft(
        tf.transpose(spec, [0, 3, 1, 2]), 256, 64, fft_length=300,
        window_fn=lambda length, dtype: tf.signal.hann_window(length, True, dtype),
    )
    np.testing.assert_allclose(ours, np.transpose(np.asarray(direct), [0, 2, 1]), atol=1e-5)


def test_overlap_add_scale_is_spleeters_two_thirds():
    assert stft_ops.overlap_add_scale(4096, 1024) == pytest.approx(2 / 3, rel=1e-6)
    assert stft_ops.overlap_add_scale(64, 32, "boxcar") == pytest.approx(0.5)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(100) / 100)
    assert stft_ops.overlap_add_scale(100, 30) == pytest.approx(30 / np.sum(window**2), rel=1e-6)


def test_fit_length_on_either_layout():
    x = tf.constant(noise(samples=10))
    first = tf.transpose(x, [0, 2, 1])
    for length in (6, 14):
        np.testing.assert_array_equal(
            np.asarray(stft_ops.fit_length(first, length, axis=2)),
            np.transpose(np.asarray(stft_ops.fit_length(x, length)), [0, 2, 1]),
        )
    assert stft_ops.fit_length(first, 14, axis=2).shape == (2, 2, 14)
    with pytest.raises(ValueError, match="axis must be 1 or 2, got 0"):
        stft_ops.fit_length(x, 5, axis=0)
