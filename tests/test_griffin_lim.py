"""Griffin-Lim: librosa's results, the classic algorithm, convergence, shapes, graphs."""
import os

import librosa
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_layer

from keras_sep.layers import GriffinLim
from keras_sep.ops import stft as stft_ops
from keras_sep.ops.griffin_lim import griffin_lim, spectral_convergence

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "spleeter_2stems_excerpt.npz")
FFT, HOP = 256, 64


def tone_and_noise(samples=4000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / 8000
    return (np.sin(2 * np.pi * 440 * t) + 0.3 * rng.standard_normal(samples)).astype("float32")


def real_audio(samples=11025):
    """A quarter second of the real song excerpt committed for the parity tests, mono."""
    return np.load(FIXTURE)["mixture"][10000 : 10000 + samples].mean(axis=1).astype("float32")


def channels_last(spectrogram):
    """librosa's (bins, frames) → (1, frames, bins, 1)."""
    return np.asarray(spectrogram).T[None, :, :, None]


def numpy_classic(magnitude, iterations, center):
    """The textbook algorithm with librosa's transforms: invert, transform, keep the phase."""
    phase = np.ones_like(magnitude, dtype=np.complex64)
    for _ in range(iterations):
        signal = librosa.istft(magnitude * phase, hop_length=HOP, n_fft=FFT, center=center)
        rebuilt = librosa.stft(signal, n_fft=FFT, hop_length=HOP, center=center)
        phase = np.exp(1j * np.angle(rebuilt))
    return librosa.istft(magnitude * phase, hop_length=HOP, n_fft=FFT, center=center)


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("momentum", [0.0, 0.99])
def test_equals_librosa_with_the_same_initial_phase(center, momentum):
    signal = tone_and_noise()
    magnitude = np.abs(librosa.stft(signal, n_fft=FFT, hop_length=HOP, center=center)).astype("float32")
    for iterations in (1, 4):
        reference = librosa.griffinlim(
            magnitude, n_iter=iterations, hop_length=HOP, n_fft=FFT, momentum=momentum, init=None, center=center
        )
        ours = griffin_lim(
            channels_last(magnitude), iterations, momentum, "zeros", FFT, HOP, center=center
        ).numpy()[0, :, 0]
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, atol=2e-5 * np.max(np.abs(reference)))


def test_momentum_zero_is_the_classic_algorithm():
    signal = tone_and_noise()
    magnitude = np.abs(librosa.stft(signal, n_fft=FFT, hop_length=HOP)).astype("float32")
    reference = numpy_classic(magnitude, 5, center=True)
    ours = griffin_lim(channels_last(magnitude), 5, 0.0, "zeros", FFT, HOP).numpy()[0, :, 0]
    np.testing.assert_allclose(ours, reference, atol=2e-5 * np.max(np.abs(reference)))
    # ... and momentum changes the result (it is not ignored).
    fast = griffin_lim(channels_last(magnitude), 5, 0.99, "zeros", FFT, HOP).numpy()[0, :, 0]
    assert np.max(np.abs(fast - reference)) > 1e-2 * np.max(np.abs(reference))


def test_classic_convergence_decreases_on_real_audio_and_fast_gets_lower():
    magnitude = np.abs(librosa.stft(real_audio(), n_fft=512, hop_length=128)).astype("float32")
    args = dict(iterations=30, init="random", frame_length=512, frame_step=128, seed=3, return_convergence=True)
    _, classic = griffin_lim(channels_last(magnitude), momentum=0.0, **args)
    _, fast = griffin_lim(channels_last(magnitude), momentum=0.99, **args)
    classic, fast = classic.numpy()[0], fast.numpy()[0]
    assert classic.shape == (30,)
    assert np.all(np.diff(classic) <= 1e-6), classic
    assert classic[-1] < 0.5 * classic[0]
    assert fast[-1] < classic[-1]


def test_convergence_is_that_of_each_iterations_signal():
    signal = tone_and_noise(2000)
    magnitude = channels_last(np.abs(librosa.stft(signal, n_fft=FFT, hop_length=HOP)))
    _, curve = griffin_lim(magnitude, 4, 0.5, "zeros", FFT, HOP, return_convergence=True)
    for k in range(4):
        waveform = griffin_lim(magnitude, k, 0.5, "zeros", FFT, HOP)
        expected = spectral_convergence(waveform, magnitude, FFT, HOP)
        np.testing.assert_allclose(curve[:, k], expected, rtol=1e-4)


def test_batch_and_channels_are_reconstructed_independently():
    signals = np.stack([tone_and_noise(3001, seed) for seed in range(4)]).reshape(2, 2, 3001)
    spectra = np.abs(librosa.stft(signals, n_fft=FFT, hop_length=HOP)).astype("float32")  # (2, 2, bins, frames)
    magnitude = np.transpose(spectra, [0, 3, 2, 1])  # (batch, frames, bins, channels)
    together = griffin_lim(magnitude, 3, 0.99, "zeros", FFT, HOP, length=3001).numpy()
    assert together.shape == (2, 3001, 2)
    for b in range(2):
        for c in range(2):
            alone = griffin_lim(magnitude[b : b + 1, ..., c : c + 1], 3, 0.99, "zeros", FFT, HOP, length=3001)
            np.testing.assert_allclose(together[b, :, c], alone.numpy()[0, :, 0], atol=1e-5)
    first = griffin_lim(
        spectra.transpose(0, 1, 3, 2), 3, 0.99, "zeros", FFT, HOP, length=3001, data_format="channels_first"
    )
    np.testing.assert_allclose(first.numpy().transpose(0, 2, 1), together, atol=1e-6)


def test_length_matches_librosa_and_xla_and_dynamic_shapes_agree():
    signal = tone_and_noise(3001)
    magnitude = np.abs(librosa.stft(signal, n_fft=FFT, hop_length=HOP)).astype("float32")
    reference = librosa.griffinlim(magnitude, n_iter=3, hop_length=HOP, n_fft=FFT, init=None, length=3001)
    eager = griffin_lim(channels_last(magnitude), 3, init="zeros", frame_length=FFT, frame_step=HOP, length=3001)
    np.testing.assert_allclose(eager.numpy()[0, :, 0], reference, atol=2e-5 * np.max(np.abs(reference)))
    spec = tf.TensorSpec((None, None, FFT // 2 + 1, None), tf.float32)
    for jit in (False, True):
        graph = tf.function(
            lambda m, n: griffin_lim(m, 3, init="zeros", frame_length=FFT, frame_step=HOP, length=n),
            input_signature=[spec, tf.TensorSpec((), tf.int32)],
            jit_compile=jit,
        )
        np.testing.assert_allclose(graph(channels_last(magnitude), 3001).numpy(), eager.numpy(), atol=1e-5)


def test_initial_phase_tensors():
    signal = tone_and_noise(2000)
    spectrum = channels_last(librosa.stft(signal, n_fft=FFT, hop_length=HOP))
    magnitude = np.abs(spectrum).astype("float32")
    # The true phase, as radians or as a complex spectrogram: nothing to do.
    for init in (np.angle(spectrum).astype("float32"), spectrum.astype("complex64")):
        restored = griffin_lim(magnitude, 0, init=init, frame_length=FFT, frame_step=HOP, length=2000)
        np.testing.assert_allclose(restored.numpy()[0, :, 0], signal, atol=1e-5)
    # A seeded random start is repeatable, and is the uniform phase that
    # TensorFlow's stateless generator draws for that seed.
    runs = [griffin_lim(magnitude, 2, init="random", frame_length=FFT, frame_step=HOP, seed=s) for s in (1, 1, 2)]
    np.testing.assert_array_equal(runs[0], runs[1])
    frames, bins = magnitude.shape[1:3]
    for run, seed in ((runs[0], 1), (runs[2], 2)):
        drawn = tf.random.stateless_uniform((1, 1, frames, bins), [seed, 0], 0.0, 2 * np.pi)
        phase = tf.transpose(drawn, (0, 2, 3, 1))  # channels last, as init takes it
        given = griffin_lim(magnitude, 2, init=phase, frame_length=FFT, frame_step=HOP)
        np.testing.assert_allclose(run, given, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(iterations=-1), "iterations must be an integer >= 0, got -1"),
        (dict(momentum=-0.5), "momentum must be a number >= 0"),
        (dict(init="mixture"), "init must be one of ('random', 'zeros'), None or a phase tensor, got 'mixture'"),
        (dict(frame_length=100), "the magnitude has 129 bins; fft_length=100 gives 51"),
        (dict(data_format="NCHW"), "data_format must be one of"),
    ],
)
def test_bad_arguments_are_refused_in_one_line(kwargs, message):
    args = dict(frame_length=FFT, frame_step=HOP)
    args.update(kwargs)
    with pytest.raises(ValueError) as error:
        griffin_lim(np.ones((1, 5, FFT // 2 + 1, 1), "float32"), **args)
    assert message in str(error.value) and "\n" not in str(error.value)


# --- the layer ------------------------------------------------------------------


def test_layer_basics_and_keras_round_trip(tmp_path):
    signal = np.stack([tone_and_noise(2000, s) for s in range(4)]).reshape(2, 2, 2000).transpose(0, 2, 1)
    magnitude = np.abs(stft_ops.stft(signal, FFT, HOP, center=True)).astype("float32")
    kwargs = dict(iterations=3, init="zeros", frame_length=FFT, frame_step=HOP, center=True)
    outputs, _ = check_layer(
        GriffinLim, kwargs, [magnitude, signal], [(2, 2000, 2)], tmp_path=tmp_path, train=False, atol=1e-5
    )
    expected = griffin_lim(magnitude, 3, 0.99, "zeros", FFT, HOP, length=2000)
    np.testing.assert_allclose(outputs[0], expected, atol=1e-6)
    # Without a reference: every sample the frames cover, and the convergence.
    layer = GriffinLim(**kwargs, return_convergence=True)
    waveform, curve = layer(magnitude)
    assert waveform.shape == layer.compute_output_shape(magnitude.shape)[0] == (2, (magnitude.shape[1] - 1) * HOP, 2)
    assert curve.shape == (2, 3)
    # The mixture's own phase as the start: the signal back at once.
    spectrum = stft_ops.stft(signal, FFT, HOP, center=True)
    restored = GriffinLim(**dict(kwargs, iterations=0))([magnitude, signal], initial_phase=spectrum)
    np.testing.assert_allclose(restored, signal, atol=1e-5)


def test_layer_refuses_bad_arguments_in_one_line():
    with pytest.raises(ValueError, match=r"init must be one of \('random', 'zeros'\).*got 'mixture'"):
        GriffinLim(init="mixture")
    with pytest.raises(ValueError, match="seed must be an integer or None, got 1.5"):
        GriffinLim(seed=1.5)
    with pytest.raises(ValueError, match="iterations must be an integer >= 0, got 2.5"):
        GriffinLim(iterations=2.5)


def test_saved_model_of_a_griffin_lim_function_at_two_batch_sizes(tmp_path):
    layer = GriffinLim(iterations=4, init="zeros", frame_length=FFT, frame_step=HOP)
    module = tf.Module()
    module.reconstruct = tf.function(
        lambda m: layer(m), input_signature=[tf.TensorSpec((None, None, FFT // 2 + 1, 1), tf.float32)]
    )
    tf.saved_model.save(module, str(tmp_path / "gl"))
    loaded = tf.saved_model.load(str(tmp_path / "gl"))
    for batch in (1, 3):
        signal = np.stack([tone_and_noise(1500, s) for s in range(batch)])[..., None]
        magnitude = np.abs(stft_ops.stft(signal, FFT, HOP, center=True)).astype("float32")
        np.testing.assert_allclose(loaded.reconstruct(magnitude), layer(magnitude), atol=1e-5)
