"""Spleeter's 4- and 5-stem models: presets, checkpoint import, parity.

Deezer's 4/5-stem weights cannot be downloaded here, so the references are
real Spleeter 2.4.2's own 4- and 5-stem graphs with seeded random weights
(tests/data/spleeter_{4,5}stems_random.npz, made by
scripts/make_spleeter45_fixtures.py); the tests regenerate the same weights
(tests/spleeter_random_checkpoint.py), write them as a TF1 checkpoint and
load it through the preset's own path.
"""
import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from keras_sep import pretrained
from keras_sep.inference import has_inference_plan
from keras_sep.separation import Separator
from spleeter_random_checkpoint import fingerprint, random_variables

DATA = os.path.join(os.path.dirname(__file__), "data")
INSTRUMENTS = {"4stems": ["vocals", "drums", "bass", "other"], "5stems": ["vocals", "piano", "drums", "bass", "other"]}


def snr_db(reference, estimate):
    reference = reference.astype(np.float64)
    return 10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


def write_checkpoint(prefix, variables):
    """A TF1 name-keyed checkpoint, as Spleeter's releases are."""
    names = sorted(variables)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[variables[n] for n in names])


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """Spleeter's ``pretrained_models`` layout with both random checkpoints."""
    root = tmp_path_factory.mktemp("pretrained_models")
    for config in INSTRUMENTS:
        with np.load(os.path.join(DATA, f"spleeter_{config}_random.npz")) as data:
            shapes, seed, expected = json.loads(str(data["variables"])), int(data["seed"]), float(data["fingerprint"])
        variables = random_variables(shapes, seed)
        # The same values as Spleeter got, or the comparison means nothing.
        assert fingerprint(variables) == pytest.approx(expected, rel=1e-12)
        (root / config).mkdir()
        write_checkpoint(str(root / config / "model"), variables)
        del variables
    return root


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def cache(cache_root, monkeypatch):
    """One cache for the module: the 4-stem model is converted once."""
    monkeypatch.setenv("KERAS_SEP_CACHE", str(cache_root))
    monkeypatch.delenv("KERAS_SEP_WEIGHTS_DIR", raising=False)


def reference(config):
    with np.load(os.path.join(DATA, f"spleeter_{config}_random.npz")) as data:
        assert json.loads(str(data["instruments"])) == INSTRUMENTS[config]
        return {name: data[name] for name in data.files}


def spleeter_model(config, weights_dir):
    model = pretrained.build_model(f"spleeter:{config}")
    return pretrained.load_spleeter_checkpoint(model.spectrogram_model, str(weights_dir / config / "model")) and model


def test_four_stems_preset_loads_unverified_files_and_separates_like_spleeter(weights_dir, caplog):
    """The whole preset path (local folder, no recorded sha256: structure
    check and a logged digest), then Spleeter's chunking and the plan."""
    with caplog.at_level(logging.WARNING, logger="keras_sep.pretrained"):
        model = pretrained.load_model("spleeter:4stems", local_dir=str(weights_dir))
    assert "no sha256 recorded" in caplog.text and "'model.index': '" in caplog.text
    assert model.instruments == tuple(INSTRUMENTS["4stems"])
    assert has_inference_plan(model.spectrogram_model)  # ELU is in the plan
    data = reference("4stems")
    for fast in (True, False):
        stems = Separator(model, chunking="spleeter", fast=fast).separate(data["mixture"], sample_rate=44100)
        for name in INSTRUMENTS["4stems"]:
            snr = snr_db(data[name], stems[name])
            print(f"4stems fast={fast} {name}: {snr:.1f} dB")
            assert stems[name].shape == data[name].shape and snr >= 60
    stems = Separator(model, chunking="spleeter", mwf=True).separate(data["mixture"], sample_rate=44100)
    for name in INSTRUMENTS["4stems"]:
        snr = snr_db(data[f"mwf_{name}"], stems[name])
        print(f"4stems --mwf {name}: {snr:.1f} dB")
        assert snr >= 60
        assert snr_db(data[f"mwf_{name}"], data[name]) < 40  # the filter matters


@pytest.mark.slow
def test_five_stems_softmax_model_separates_like_spleeter(weights_dir):
    model = spleeter_model("5stems", weights_dir)
    assert model.spectrogram_model.mask_activation == "softmax"
    assert has_inference_plan(model.spectrogram_model)  # the plan computes the softmax head
    data = reference("5stems")
    for fast in (True, False):
        stems = Separator(model, chunking="spleeter", fast=fast).separate(data["mixture"], sample_rate=44100)
        for name in INSTRUMENTS["5stems"]:
            snr = snr_db(data[name], stems[name])
            print(f"5stems fast={fast} {name}: {snr:.1f} dB")
            assert snr >= 60
    # Five Wiener-filtered sources: Spleeter's --mwf (norbert on the whole
    # song) over the Keras layers' estimates, within float32 rounding.
    from test_wiener import whole_song_mwf

    expected = whole_song_mwf(model, data["mixture"])
    filtered = Separator(model, chunking="spleeter", mwf=True).separate(data["mixture"], sample_rate=44100)
    for name in INSTRUMENTS["5stems"]:
        snr = snr_db(expected[name], filtered[name])
        print(f"5stems --mwf {name}: {snr:.1f} dB")
        assert snr >= 60 and snr_db(expected[name], stems[name]) < 40  # the filter matters
    # The default overlapping chunks run too.
    filtered = Separator(model, mwf=True).separate(data["mixture"], sample_rate=44100)
    assert sorted(filtered) == sorted(INSTRUMENTS["5stems"])
    assert all(np.isfinite(v).all() and v.shape == data["mixture"].shape for v in filtered.values())


def test_wrong_checkpoint_is_refused_and_dropped(tmp_path, monkeypatch):
    """A 2-stem checkpoint where the 4-stem one belongs: a one-line error
    naming what is missing, and no cached files trusted afterwards."""
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "models" / "4stems"
    folder.mkdir(parents=True)
    write_checkpoint(str(folder / "model"), {"conv2d/kernel": np.zeros((5, 5, 2, 16), np.float32)})
    with pytest.raises(pretrained.PretrainedError, match="not a checkpoint of this 4-instrument model; 51 variables missing"):
        pretrained.load_model("spleeter:4stems", local_dir=str(tmp_path / "models"))
    assert not (tmp_path / "cache" / "spleeter_4stems" / "files").exists()


@pytest.mark.parametrize("name,bins,count,head", [
    ("spleeter:4stems", 1024, 4, "sigmoid"), ("spleeter:4stems-16kHz", 1536, 4, "sigmoid"),
    ("spleeter:5stems", 1024, 5, "softmax"), ("spleeter:5stems-16kHz", 1536, 5, "softmax"),
])
def test_presets_describe_spleeter_configurations(name, bins, count, head):
    spec = pretrained.get_preset(name)
    model = spec["model"]
    assert (model["bins"], len(model["instruments"]), model.get("mask_activation", "sigmoid")) == (bins, count, head)
    assert model["encoder_activation"] == model["decoder_activation"] == "elu"
    checkpoint = spec["checkpoint"]
    assert checkpoint["url"].endswith(name.split(":")[1] + ".tar.gz") and "v1.4.0" in checkpoint["url"]
    # No digest was computed for these archives: none may be claimed.
    assert set(checkpoint["files"].values()) == {None} and "structure" in checkpoint["verification"]


def test_cli_separates_four_stems_with_mwf(weights_dir, tmp_path, monkeypatch):
    """``keras-sep separate -m spleeter:4stems --mwf``: one file per stem,
    Spleeter's --mwf stems in them (16-bit files: about 60 dB at best)."""
    import soundfile as sf

    from keras_sep import cli

    data = reference("4stems")
    sf.write(tmp_path / "mix.wav", data["mixture"], 44100, subtype="FLOAT")
    monkeypatch.setenv("KERAS_SEP_WEIGHTS_DIR", str(weights_dir))
    assert cli.main(["separate", str(tmp_path / "mix.wav"), "-o", str(tmp_path / "out"),
                     "-m", "spleeter:4stems", "--mwf"]) == 0
    for name in INSTRUMENTS["4stems"]:
        written, rate = sf.read(tmp_path / "out" / "mix" / f"{name}.wav", dtype="float32")
        assert rate == 44100 and written.shape == data["mixture"].shape
        assert snr_db(data[f"mwf_{name}"], written) > 40


def test_cli_unknown_stem_count_lists_the_new_presets(capsys):
    from keras_sep import cli

    assert cli.main(["separate", "x.wav", "-o", "out", "-m", "spleeter:3stems"]) == 2
    error = capsys.readouterr().err
    assert "spleeter:3stems" in error and "spleeter:4stems" in error and "spleeter:5stems-16kHz" in error


@pytest.mark.parametrize("count,head", [(4, "sigmoid"), (5, "softmax")])
def test_export_serves_one_output_per_stem(tmp_path, count, head):
    """TF Serving export of 4- and 5-stem separators (through the plan,
    without XLA, for both heads)."""
    import keras

    from keras_sep import export
    from keras_sep.models import UNetSeparator, WaveformSeparator

    keras.utils.set_random_seed(3)
    names = INSTRUMENTS[f"{count}stems"]
    net = UNetSeparator(names, filters=(4, 8), bins=32, frames=32, encoder_activation="elu",
                        decoder_activation="elu", mask_activation=head)
    sep = Separator(WaveformSeparator(net, sample_rate=8000, frame_length=128, frame_step=32, overlap_frames=8))
    # The export serves the plan, which computes the Keras network's masks (this head's too).
    plan = export.serving_network(sep.model)
    magnitude = np.random.default_rng(2).uniform(0, 1, (2, 32, 32, 2)).astype(np.float32)
    reference = net(magnitude, training=False)
    for name, estimate in plan(magnitude).items():
        np.testing.assert_allclose(estimate.numpy(), reference[name].numpy(), rtol=1e-4, atol=1e-5)
    path = export.export_saved_model(sep, str(tmp_path / "serving" / "1"))
    serve = tf.saved_model.load(path).signatures["serving_default"]
    wave = np.random.default_rng(1).uniform(-0.5, 0.5, (3000, 2)).astype(np.float32)
    served = serve(waveform=tf.constant(wave))
    assert sorted(served) == sorted(names)
    expected = sep.separate(wave, sample_rate=8000)
    for name in names:
        np.testing.assert_allclose(served[name].numpy(), expected[name], atol=1e-5)


def test_softmax_model_round_trips_through_a_keras_file(tmp_path):
    import keras

    from keras_sep.models import UNetSeparator

    net = UNetSeparator(INSTRUMENTS["5stems"], filters=(4, 8), bins=16, frames=16, encoder_activation="elu",
                        decoder_activation="elu", mask_activation="softmax")
    x = np.random.default_rng(2).uniform(0, 1, (1, 16, 16, 2)).astype(np.float32)
    net.save(tmp_path / "net.keras")
    loaded = keras.saving.load_model(tmp_path / "net.keras")
    assert loaded.get_config() == net.get_config() and loaded.mask_activation == "softmax"
    before, after = net(x, training=False), loaded(x, training=False)
    for name in INSTRUMENTS["5stems"]:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-6)
    np.testing.assert_allclose(sum(np.asarray(v) for v in after.values()), x, rtol=1e-5)
    with pytest.raises(ValueError, match="mask_activation must be one of .* got 'tanh'"):
        UNetSeparator(mask_activation="tanh")


@pytest.mark.parametrize("count,timed,most", [(2, ["1", "4"], 4), (4, ["1", "2"], 2), (5, None, 1)])
def test_chunks_in_flight_per_call_shrink_with_the_stem_count(tmp_path, monkeypatch, count, timed, most):
    """Each chunk in flight holds every instrument's feature maps: the batch
    size timing offers at most 8 U-Nets per call (4 stems: 2 chunks; 5
    stems: one, untimed), and separate() on an array never feeds more."""
    from keras_sep.inference import autotune
    from keras_sep.models import UNetSeparator, WaveformSeparator

    monkeypatch.setenv("KERAS_SEP_TUNE", "1")
    offered = []

    def largest(signature, candidates, inputs, default, *args, **kwargs):
        if not signature.startswith("separator.batch"):
            return default  # the plan's operator forms: untimed
        offered.append(sorted(candidates, key=int))
        return max(candidates, key=int)

    monkeypatch.setattr(autotune, "choose", largest)
    names = [f"s{i}" for i in range(count)]
    net = UNetSeparator(names, filters=(4, 8), bins=32, frames=32, encoder_activation="elu",
                        decoder_activation="elu", mask_activation="softmax" if count == 5 else "sigmoid")
    sep = Separator(WaveformSeparator(net, sample_rate=8000, frame_length=128, frame_step=32, overlap_frames=8))
    fed = []
    pipeline = sep._pipelines.pipeline

    def recording(batch):
        run = pipeline(batch)

        def counted(segments, weights):
            fed.append(len(segments))
            return run(segments, weights)

        return counted

    sep._pipelines.pipeline = recording
    stems = sep.separate(np.random.default_rng(0).uniform(-0.5, 0.5, (12000, 2)).astype(np.float32), sample_rate=8000)
    assert sorted(stems) == sorted(names)
    assert offered == ([timed] if timed else [])
    assert sep.batch_size == most and max(fed) == most and len(fed) > 1
