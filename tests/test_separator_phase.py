"""Separator(phase="griffin_lim"): the stems' phases re-estimated chunk by chunk."""
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from keras_sep import cli
from keras_sep.models.waveform_separator import PHASE_MOMENTUM
from keras_sep.ops import masks as mask_ops
from keras_sep.ops import stft as stft_ops
from keras_sep.ops.griffin_lim import reconstruct_phase
from keras_sep.separation import PHASES, Separator
from test_separator import RATE, tiny_model


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(5)
    return tiny_model()


def noise(samples, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (samples, 2)).astype(np.float32)


def reference_segment(model, segment, iterations):
    """One chunk by hand: ratio masks on the mixture, Griffin-Lim from the
    masked spectra over all bins, overlap-add scaled as the model does."""
    net = model.spectrogram_model
    spectrum = stft_ops.stft(tf.transpose(segment, [0, 2, 1]), model.frame_length, model.frame_step,
                             data_format="channels_first")[..., : net.bins]
    estimates = net(tf.transpose(tf.abs(spectrum), [0, 2, 3, 1]))
    masks = mask_ops.ratio_masks([estimates[n] for n in model.instruments], model.separation_exponent)
    total = model.frame_length // 2 + 1
    stems = {}
    for name, mask in zip(model.instruments, masks):
        source = spectrum * tf.cast(tf.transpose(mask, [0, 3, 1, 2]), tf.complex64)
        source = tf.pad(source, [[0, 0], [0, 0], [0, 0], [0, total - net.bins]])
        phased = reconstruct_phase(tf.abs(source), iterations, PHASE_MOMENTUM, source, model.frame_length,
                                   model.frame_step, center=False, data_format="channels_first")
        wave = stft_ops.istft(phased * model.output_scale, model.frame_length, model.frame_step,
                              normalize=False, data_format="channels_first")
        stems[name] = tf.transpose(wave, [0, 2, 1]).numpy()
    return stems


def test_a_chunk_is_griffin_lim_from_the_masked_mixture(model):
    segment = noise(model.segment_length)[None]
    for jit in (False, True):
        ours = model.separate_segments(segment, phase_iterations=3, jit_compile=jit)
        expected = reference_segment(model, segment, 3)
        for name in model.instruments:
            np.testing.assert_allclose(ours[name], expected[name], atol=1e-5)
    # With no iterations the reference is the mixture-phase stem.
    plain = model.separate_segments(segment)
    for name, value in reference_segment(model, segment, 0).items():
        np.testing.assert_allclose(plain[name], value, atol=1e-5)
        assert np.abs(ours[name] - plain[name]).max() > 1e-3


@pytest.mark.parametrize("mwf", [False, True])
def test_streamed_griffin_lim_stems_do_not_depend_on_batches_or_blocks(model, mwf, monkeypatch):
    wave = noise(3 * model.segment_length, seed=2)
    # Without XLA (fast=False): the same graphs, compiled in a fraction of the time.
    kwargs = dict(phase="griffin_lim", phase_iterations=2, mwf=mwf, fast=False)
    one = Separator(model, batch_size=1, **kwargs).separate(wave, RATE)
    from keras_sep.separation import resampling

    monkeypatch.setattr(resampling, "BLOCK", 333)
    three = Separator(model, batch_size=3, **kwargs).separate(wave, RATE)
    for name in model.instruments:
        assert one[name].shape == wave.shape
        np.testing.assert_allclose(three[name], one[name], atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(phase="random"), "phase must be one of ('mixture', 'griffin_lim'), got 'random'"),
        (dict(phase_iterations=4), "phase_iterations=4 is for phase='griffin_lim'"),
        (dict(phase="griffin_lim", phase_iterations=0), "phase_iterations must be a positive integer, got 0"),
        (dict(phase="griffin_lim", phase_iterations=2.5), "phase_iterations must be a positive integer, got 2.5"),
    ],
)
def test_bad_phase_arguments_are_one_line_errors(model, kwargs, message):
    with pytest.raises(ValueError) as error:
        Separator(model, **kwargs)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_griffin_lim_separator_is_not_exported(model, tmp_path):
    from keras_sep.export import export_saved_model

    with pytest.raises(ValueError, match="phase='griffin_lim' cannot be exported"):
        export_saved_model(Separator(model, phase="griffin_lim"), str(tmp_path / "m" / "1"))


def test_cli_phase_options(model, tmp_path, capsys):
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    wave = noise(5000, seed=3)
    sf.write(tmp_path / "a.wav", wave, RATE, subtype="FLOAT")
    args = ["separate", str(tmp_path / "a.wav"), "-o", str(tmp_path), "-m", path]
    assert cli.main(args + ["--phase", "griffin_lim", "--phase-iterations", "2"]) == 0
    expected = Separator(model, phase="griffin_lim", phase_iterations=2, batch_size=1).separate(wave, RATE)
    for name in model.instruments:
        data, _ = sf.read(tmp_path / "a" / f"{name}.wav", dtype="float32")
        np.testing.assert_allclose(data, expected[name], atol=1e-5)
    capsys.readouterr()
    assert cli.main(args + ["--overwrite", "--phase-iterations", "2"]) == 2
    assert cli.main(args + ["--overwrite", "--phase", "griffin_lim", "--phase-iterations", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "keras-sep: --phase-iterations is for --phase griffin_lim; --phase mixture runs no iterations",
        "keras-sep: --phase-iterations must be >= 1, got 0",
    ]
    sub = next(a for a in cli.build_parser()._subparsers._group_actions).choices["separate"]
    assert tuple(next(a for a in sub._actions if "--phase" in a.option_strings).choices) == PHASES
