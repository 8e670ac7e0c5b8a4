"""DDSP signal processing (keras_sep.ops.synthesis / filtering / loudness and
the multi-scale spectral loss) against numpy references written here."""
import librosa
import numpy as np
import pytest
import tensorflow as tf

from keras_sep.losses import MultiScaleSpectralLoss
from keras_sep.ops import filtering, loudness, synthesis

RNG = np.random.default_rng(21)


def _np_phase(frequencies, sample_rate):
    """float64 reference phase: inclusive running sum of 2π f / sr."""
    return np.cumsum(2 * np.pi * np.asarray(frequencies, np.float64) / sample_rate, axis=1)


def test_oscillator_bank_is_a_sum_of_sines():
    sr = 8000
    freqs = RNG.uniform(50, 3900, (2, 500, 3)).astype("float32")
    freqs[0, :, 2] = 4100.0  # above Nyquist: silent
    amps = RNG.uniform(0, 1, (2, 500, 3)).astype("float32")
    reference_amps = np.where(freqs < sr / 2, amps, 0.0)
    reference = np.sum(reference_amps * np.sin(_np_phase(freqs, sr)), axis=-1, keepdims=True)
    out = synthesis.oscillator_bank(freqs, amps, sr).numpy()
    np.testing.assert_allclose(out, reference, atol=2e-5)


def test_harmonic_synthesis_matches_numpy_with_upsampling_and_nyquist():
    sr, step = 8000, 16
    f0 = RNG.uniform(200, 900, (2, 12, 1)).astype("float32")
    amps = RNG.uniform(0, 1, (2, 12, 6)).astype("float32")
    out = synthesis.harmonic_synthesis(f0, amps, sr, step).numpy()
    # Reference upsampling: linear f0 between frame centres t * step (last held),
    # amplitudes crossfaded by Hann windows centred there.
    n = np.arange(12 * step)
    position = n / step
    f0_audio = np.stack([np.interp(position, np.arange(12), f0[b, :, 0]) for b in range(2)])[..., None]
    weight = np.clip(position - np.floor(position), 0, 1)
    hann_in = 0.5 - 0.5 * np.cos(np.pi * weight)  # rising half of the next frame's window
    idx = np.floor(position).astype(int)
    nxt = np.minimum(idx + 1, 11)
    amps_audio = amps[:, idx] * (1 - hann_in)[None, :, None] + amps[:, nxt] * hann_in[None, :, None]
    harmonics = f0_audio * np.arange(1, 7)
    amps_audio = np.where(harmonics < sr / 2, amps_audio, 0.0)
    reference = np.sum(amps_audio * np.sin(_np_phase(f0_audio, sr) * np.arange(1, 7)), -1, keepdims=True)
    assert np.any(harmonics >= sr / 2)  # the Nyquist rule is exercised
    np.testing.assert_allclose(out, reference, atol=2e-4)


def test_phase_stays_accurate_over_60_seconds():
    sr, step, seconds = 16000, 64, 60
    frames = seconds * sr // step
    t = np.arange(frames) / (sr / step)
    f0 = (440 + 30 * np.sin(2 * np.pi * 0.5 * t)).astype("float32")[None, :, None]
    amps = np.tile(np.array([1.0, 0.5, 0.25], "float32"), (1, frames, 1))
    out = synthesis.harmonic_synthesis(f0, amps, sr, step).numpy()[0, :, 0]
    f0_audio = np.interp(np.arange(frames * step) / step, np.arange(frames), f0[0, :, 0])[None, :, None]
    phase = _np_phase(f0_audio, sr)[0, :, 0]
    reference = sum(a * np.sin(k * phase) for k, a in zip((1, 2, 3), (1.0, 0.5, 0.25)))
    error = np.max(np.abs(out[-sr:] - reference[-sr:]))  # the last second, where drift is worst
    assert error < 1e-3, error
    # The reference would catch a plain float32 running sum: it drifts by far more.
    naive = np.cumsum((2 * np.pi / sr * f0_audio[0, :, 0]).astype(np.float32), dtype=np.float32)
    assert np.max(np.abs(np.sin(naive[-sr:]) - np.sin(phase[-sr:]))) > 1e-2


def test_upsample_with_windows_keeps_constants_and_frame_values():
    controls = RNG.uniform(0, 1, (2, 7, 3)).astype("float32")
    out = synthesis.upsample_with_windows(controls, 8).numpy()
    assert out.shape == (2, 56, 3)
    np.testing.assert_allclose(out[:, ::8], controls, atol=1e-6)  # frame t sits at t * step
    const = synthesis.upsample_with_windows(np.full((1, 5, 1), 0.3, "float32"), 8).numpy()
    np.testing.assert_allclose(const, 0.3, atol=1e-6)


def test_exp_sigmoid_and_harmonic_amplitudes():
    x = np.linspace(-10, 10, 9).astype("float32")
    reference = 2.0 * (1 / (1 + np.exp(-x))) ** np.log(10.0) + 1e-7
    np.testing.assert_allclose(synthesis.exp_sigmoid(x).numpy(), reference, rtol=1e-5)
    amps = synthesis.harmonic_amplitudes(
        np.full((1, 2, 1), 2.0, "float32"), np.array([[[1, 3, 4.0], [1, 1, 1]]], "float32"),
        np.array([[[100.0], [1500.0]]], "float32"), 4000).numpy()
    np.testing.assert_allclose(amps, [[[0.25, 0.75, 1.0], [2.0, 0, 0]]], atol=1e-6)


def test_frequency_filter_matches_numpy_convolution():
    step, frames, bins = 32, 5, 17
    audio = RNG.normal(size=(2, frames * step, 1)).astype("float32")
    mags = RNG.uniform(0, 1, (2, frames, bins)).astype("float32")
    out = filtering.frequency_filter(audio, mags, step, window_size=24).numpy()
    taps = 24
    reference = np.zeros((2, frames * step + taps - 1))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(taps) / taps)
    for b in range(2):
        for t in range(frames):
            zero_phase = np.fft.irfft(mags[b, t])  # 32 taps, centred on tap 0
            ir = np.roll(zero_phase, 16)[16 - taps // 2 : 16 - taps // 2 + taps] * window
            block = np.convolve(audio[b, t * step : (t + 1) * step, 0], ir)
            reference[b, t * step : t * step + len(block)] += block
    reference = reference[:, taps // 2 : taps // 2 + frames * step, None]
    np.testing.assert_allclose(out, reference, atol=1e-5)


def test_filtered_noise_follows_the_magnitudes():
    # Noise shaped by a low-pass response has (almost) no energy up high.
    mags = np.zeros((1, 200, 65), "float32")
    mags[..., :16] = 1.0
    noise = filtering.filtered_noise(mags, 64, seed=1).numpy()[0, :, 0]
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    cut = len(spectrum) // 4
    assert spectrum[cut + len(spectrum) // 10 :].sum() < 1e-3 * spectrum[:cut].sum()


def test_reverb_delta_is_identity_and_matches_numpy():
    audio = RNG.normal(size=(2, 300, 1)).astype("float32")
    delta = np.zeros(50, "float32")
    delta[0] = 1.0
    np.testing.assert_allclose(filtering.reverb(audio, delta, add_dry=False).numpy(), audio, atol=1e-5)
    ir = RNG.normal(size=(2, 50)).astype("float32") * 0.1
    out = filtering.reverb(audio, ir).numpy()
    reference = np.stack([np.convolve(audio[b, :, 0], ir[b])[:300] for b in range(2)])[..., None] + audio
    np.testing.assert_allclose(out, reference, atol=1e-5)


def test_a_weighting_matches_librosa():
    freqs = np.linspace(0, 8000, 257)
    np.testing.assert_allclose(
        loudness.a_weighting_db(freqs.astype("float32")).numpy(),
        librosa.A_weighting(freqs, min_db=-80.0), atol=1e-3)


def test_loudness_matches_numpy_and_tracks_gain():
    sr, step, n = 16000, 64, 512
    audio = RNG.normal(size=(1, 4096, 1)).astype("float32") * 0.1
    out = loudness.loudness_db(audio, sr, step, frame_length=n).numpy()[0, :, 0]
    assert out.shape == (4096 // step,)
    padded = np.pad(audio[0, :, 0], n // 2)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    weight = 10 ** (librosa.A_weighting(np.linspace(0, sr / 2, n // 2 + 1)) / 10)
    reference = [10 * np.log10(np.mean(np.abs(np.fft.rfft(padded[t * step : t * step + n] * window)) ** 2 * weight))
                 for t in range(len(out))]
    np.testing.assert_allclose(out, reference, atol=1e-3)
    louder = loudness.loudness_db(audio * 10, sr, step, frame_length=n).numpy()[0, :, 0]
    np.testing.assert_allclose(louder - out, 20.0, atol=1e-3)


def test_multi_scale_loss_zero_for_identical_and_matches_numpy():
    loss = MultiScaleSpectralLoss(fft_sizes=(64, 32))
    a = RNG.normal(size=(2, 256, 1)).astype("float32")
    b = RNG.normal(size=(2, 256, 1)).astype("float32")
    assert float(loss(a, a)) == 0.0
    expected = []
    for x, y in zip(a[..., 0], b[..., 0]):
        total = 0.0
        for size in (64, 32):
            step = size // 4
            sx, sy = (np.abs(librosa.stft(v, n_fft=size, hop_length=step, center=True, pad_mode="constant"))
                      for v in (x, y))
            total += np.mean(np.abs(sx - sy))
            total += np.mean(np.abs(np.log(np.maximum(sx, 1e-5)) - np.log(np.maximum(sy, 1e-5))))
        expected.append(total)
    np.testing.assert_allclose(float(loss(a, b)), np.mean(expected), rtol=1e-4)


def test_gradients_are_finite_for_silence_and_f0_at_zero():
    f0 = tf.Variable(np.zeros((1, 8, 1), "float32"))
    amps = tf.Variable(np.zeros((1, 8, 4), "float32"))
    mags = tf.Variable(np.zeros((1, 8, 9), "float32"))
    ir = tf.Variable(np.zeros(32, "float32"))
    loss = MultiScaleSpectralLoss(fft_sizes=(64, 32))
    target = np.zeros((1, 8 * 16, 1), "float32")
    with tf.GradientTape() as tape:
        harmonic = synthesis.harmonic_synthesis(f0, amps, 16000, 16)
        noise = filtering.filtered_noise(mags, 16, seed=0)
        audio = filtering.reverb(harmonic + noise, ir)
        value = loss(target, audio) + tf.reduce_mean(loudness.loudness_db(audio, 16000, 16, 64))
    grads = tape.gradient(value, [f0, amps, mags, ir])
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


def test_dynamic_batch_and_length_in_a_graph():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 1]), tf.TensorSpec([None, None, 4])])
    def synth(f0, amps):
        audio = synthesis.harmonic_synthesis(f0, amps, 16000, 32)
        return filtering.reverb(audio, tf.ones([16]) * 0.01)

    for batch, frames in ((1, 3), (3, 5)):
        out = synth(np.full((batch, frames, 1), 220.0, "float32"), np.ones((batch, frames, 4), "float32"))
        assert out.shape == (batch, frames * 32, 1)


@pytest.mark.parametrize("bad", [0, 2.5])
def test_frame_step_is_checked(bad):
    with pytest.raises(ValueError, match="frame_step"):
        synthesis.upsample_linear(np.zeros((1, 2, 1), "float32"), bad)
