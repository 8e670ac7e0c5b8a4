"""Training OpenUnmix with the tf.data pipeline and fit_separator."""
import numpy as np
import pytest
import tensorflow as tf

from keras_sep import data, training
from keras_sep.models import open_unmix

STFT = dict(frame_length=256, frame_step=64, bins=129, frames=16)


def test_input_statistics_match_numpy():
    rng = np.random.default_rng(3)
    magnitudes = rng.gamma(2.0, 1.0, (10, 7, 12, 2)).astype("float32")
    magnitudes[..., 5, :] = 2.0  # a constant bin: its std is floored
    pairs = tf.data.Dataset.from_tensor_slices((magnitudes, {"vocals": magnitudes})).batch(3)
    mean, std = training.input_statistics(pairs)
    frames = magnitudes.astype("float64").mean(axis=-1).reshape(-1, 12)
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-10)
    expected = frames.std(axis=0)
    expected[5] = 1e-4 * expected.max()
    np.testing.assert_allclose(std, expected, rtol=1e-8)
    # max_batches reads only the first elements.
    first, _ = training.input_statistics(pairs, max_batches=1)
    np.testing.assert_allclose(first, magnitudes[:3].mean(axis=-1).reshape(-1, 12).mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="no frames"):
        training.input_statistics(pairs.take(0))


def _stems(examples=8, seed=0):
    """Waveform examples whose drums are 0.7 and vocals 0.3 of the mixture."""
    rng = np.random.default_rng(seed)
    samples = (STFT["frames"] - 1) * STFT["frame_step"] + STFT["frame_length"]
    mixture = rng.standard_normal((examples, samples, 2)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(
        {"mixture": mixture, "drums": 0.7 * mixture, "vocals": 0.3 * mixture})


def _pairs(stems, batch_size=4):
    return data.to_spectrogram_pairs(data.batch(stems, batch_size), instruments=("drums", "vocals"), **STFT)


@pytest.mark.slow
def test_fit_separator_trains_the_models_own_target():
    stems = _stems()
    mean, std = training.input_statistics(_pairs(stems).take(2))
    model = open_unmix("drums", nb_bins=STFT["bins"], hidden_size=8, max_bin=100,
                       input_mean=mean, input_scale=std)
    np.testing.assert_allclose(model.get_layer("input_norm").scale.numpy(), 1 / std[:100], rtol=1e-6)
    model, history = training.fit_separator(
        model, _pairs(stems), _pairs(stems), epochs=20, steps_per_epoch=2, validation_steps=1,
        learning_rate=3e-2, loss="mse", verbose=0)
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    # The loss is Open-Unmix's MSE on the drums magnitude, not the vocals'.
    x, targets = next(iter(_pairs(stems)))
    estimate = model(x, training=False).numpy()
    drums_error = np.mean((estimate - targets["drums"].numpy()) ** 2)
    vocals_error = np.mean((estimate - targets["vocals"].numpy()) ** 2)
    assert drums_error < 0.5 * vocals_error


def test_a_target_missing_from_the_data_is_named():
    model = open_unmix("bass", nb_bins=STFT["bins"], hidden_size=8)
    with pytest.raises(ValueError, match=r"the targets hold \['drums', 'vocals'\], not the model's output 'bass'"):
        training.fit_separator(model, _pairs(_stems()), epochs=1, steps_per_epoch=1, verbose=0)


# --- keras-sep train with an Open-Unmix preset ---------------------------------

import json  # noqa: E402
import re  # noqa: E402

import keras  # noqa: E402
import soundfile as sf  # noqa: E402

from keras_sep import cli  # noqa: E402
from keras_sep.models import OpenUnmix  # noqa: E402

RATE = 8000
UMX_TARGETS = ["vocals", "drums", "bass", "other"]


def _four_stems(root):
    rng = np.random.default_rng(0)
    t = np.arange(2 * RATE) / RATE
    for subset, count in (("train", 2), ("test", 1)):
        for i in range(count):
            folder = root / subset / f"song{i}"
            folder.mkdir(parents=True)
            for k, stem in enumerate(UMX_TARGETS):
                tone = 0.2 * np.sin(2 * np.pi * (150 * (k + 1) + 40 * i) * t)[:, None]
                wave = tone * np.ones((1, 2)) + 0.02 * rng.standard_normal((len(t), 2))
                sf.write(folder / f"{stem}.wav", wave.astype(np.float32), RATE)


def _umx_config(root):
    return {
        "model": {"preset": "umxhq", "overrides": {
            "hidden_size": 8, "nb_layers": 1,
            "signal": {"sample_rate": RATE, "frame_length": 128, "frame_step": 32, "frames": 16}}},
        "data": {"source": "folder", "root": str(root), "batch_size": 2, "augment": False},
        "training": {"epochs": 2, "steps_per_epoch": 2, "validation_steps": 1, "loss": "mse",
                     "learning_rate": 0.01, "precision": "float32", "strategy": "default"},
    }


@pytest.mark.slow
def test_cli_train_fits_one_network_per_target(tmp_path, capsys):
    _four_stems(tmp_path / "data")
    (tmp_path / "umx.json").write_text(json.dumps(_umx_config(tmp_path / "data")))
    out = tmp_path / "run"
    assert cli.main(["train", "-c", str(tmp_path / "umx.json"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    for target in UMX_TARGETS:
        assert f"trained {target}: {out / (target + '.keras')}" in printed
        assert re.search(rf"^{target} final loss: [0-9.]+, val_loss: [0-9.]+$", printed, re.M)
    saved = json.load(open(out / "config.json"))
    assert saved["resolved_model"]["nb_bins"] == 65 and saved["resolved_model"]["max_bin"] == 65
    nets = {t: keras.saving.load_model(out / f"{t}.keras") for t in UMX_TARGETS}
    assert all(isinstance(n, OpenUnmix) and n.target == t and n.hidden_size == 8 for t, n in nets.items())
    # The input normalisation started at the training tracks' statistics: the
    # mono magnitude of the tones and noise, about what numpy's STFT gives.
    mixture = sum(sf.read(tmp_path / "data" / "train" / "song0" / f"{s}.wav")[0] for s in UMX_TARGETS)
    window = np.hanning(129)[:-1]  # periodic Hann
    mags = np.mean([np.abs(np.fft.rfft(np.lib.stride_tricks.sliding_window_view(mixture[:, c], 128)[::32] * window))
                    for c in range(2)], axis=0)
    config = nets["vocals"].get_config()
    np.testing.assert_allclose(np.mean(config["input_mean"]), mags.mean(), rtol=0.2)


@pytest.mark.parametrize("overrides, message", [
    (["model.overrides.hiden_size=8"], r"unknown model.overrides \['hiden_size'\]"),
    (["model.overrides.signal.hop=3"], r"unknown model.overrides.signal \['hop'\]"),
    (["model.pretrained=true"], "pretrained models cannot change their architecture"),
    (["training.freeze_encoder=true"], "freeze_encoder applies to U-Nets"),
    (["data.source=musdb"], "Open-Unmix trains on data.source 'bach' or 'folder'"),
])
def test_cli_train_names_what_open_unmix_cannot_build(overrides, message, tmp_path, capsys):
    (tmp_path / "umx.json").write_text(json.dumps(_umx_config(tmp_path / "nowhere")))
    args = ["train", "-c", str(tmp_path / "umx.json"), "-o", str(tmp_path / "run")]
    for text in overrides:
        args += ["--set", text]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(message, err), err
    assert not (tmp_path / "run").exists()
