"""keras-sep train: configuration merging and a tiny end-to-end run."""
import json
import re

import keras
import numpy as np
import pytest
import soundfile as sf

from keras_sep import cli, recipes
from keras_sep.separation import Separator


def test_resolve_merges_defaults_file_and_overrides(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"training": {"epochs": 3}, "data": {"targets": {"v": ["vocals"]}}}))
    config = recipes.resolve(path, ["training.learning_rate=0.01", "model.overrides.filters=[4,8]",
                                    "data.root=/x/y"])
    assert config["training"]["epochs"] == 3 and config["training"]["learning_rate"] == 0.01
    assert config["training"]["loss"] == "l1"  # default kept
    assert config["model"]["overrides"]["filters"] == [4, 8]
    assert config["data"]["root"] == "/x/y" and config["data"]["targets"] == {"v": ["vocals"]}
    with pytest.raises(ValueError, match="section.key=value"):
        recipes.resolve(None, ["nonsense"])
    with pytest.raises(ValueError, match="unknown configuration sections"):
        recipes.resolve({"modle": {}})


@pytest.mark.parametrize("config, overrides, message", [
    ({"training": {"epoch": 3}}, [], r"unknown training settings \['epoch'\]"),
    (None, ["training.epochs=abc"], "training.epochs must be an integer, got 'abc'"),
    (None, ["training.epochs=0"], "training.epochs must be at least 1, got 0"),
    (None, ["training.learning_rate=-1"], "training.learning_rate must be > 0"),
    (None, ["data.augment=1"], "data.augment must be true or false, got 1"),
    (None, ["training.epochs.x=1"], "override 'training.epochs.x=1': epochs is a value, not a section"),
    ({"data": [1]}, [], "data must be an object of settings"),
    ([1, 2], [], "a config is a JSON object of sections, got list"),
])
def test_resolve_names_bad_settings(config, overrides, message):
    with pytest.raises(ValueError, match=message):
        recipes.resolve(config, overrides)


def test_resolve_names_a_bad_file(tmp_path):
    (tmp_path / "broken.json").write_text('{"training": {"epochs": 3}')
    (tmp_path / "typo.json").write_text('{"training": {"epoch": 3}}')
    for name, message in [("missing.json", "no such config file"), ("broken.json", "not valid JSON"),
                          ("typo.json", "unknown training settings")]:
        path = str(tmp_path / name)
        with pytest.raises(ValueError) as error:
            recipes.resolve(path)
        assert str(error.value).startswith(f"{path}: ") and message in str(error.value)


def _stems_folder(root, rate=8000):
    rng = np.random.default_rng(0)
    t = np.arange(2 * rate) / rate
    for subset, count in (("train", 2), ("test", 1)):
        for i in range(count):
            folder = root / subset / f"song{i}"
            folder.mkdir(parents=True)
            voice = 0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)[:, None] * np.ones((1, 2))
            noise = 0.05 * rng.standard_normal((len(t), 2))
            sf.write(folder / "vocals.wav", voice.astype(np.float32), rate)
            sf.write(folder / "other.wav", noise.astype(np.float32), rate)


@pytest.mark.slow
def test_cli_train_writes_a_usable_separator(tmp_path, capsys):
    _stems_folder(tmp_path / "data")
    config = {
        "model": {"overrides": {"filters": [4, 8], "bins": 32, "frames": 16,
                                "signal": {"sample_rate": 8000, "frame_length": 128, "frame_step": 32,
                                           "overlap_frames": 4}}},
        "data": {"source": "folder", "root": str(tmp_path / "data"), "batch_size": 2,
                 "targets": {"vocals": ["vocals"], "accompaniment": ["other"]}},
        "training": {"epochs": 2, "steps_per_epoch": 3, "validation_steps": 1,
                     "learning_rate": 0.01, "precision": "float32", "strategy": "default"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    out = tmp_path / "run"
    assert cli.main(["train", "-c", str(tmp_path / "config.json"), "--set", "training.epochs=3",
                     "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "separator.keras" in printed
    saved = json.load(open(out / "config.json"))
    assert saved["training"]["epochs"] == 3 and saved["data"]["source"] == "folder"
    # The saved separator is the trained network inside the configured wrapper.
    import keras_sep.models  # noqa: F401

    separator = keras.saving.load_model(out / "separator.keras")
    assert separator.sample_rate == 8000 and separator.frame_length == 128
    trained = keras.saving.load_model(out / "final.keras")
    for a, b in zip(separator.spectrogram_model.weights, trained.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    wave = np.random.default_rng(1).uniform(-0.3, 0.3, (4000, 2)).astype(np.float32)
    stems = Separator(separator).separate(wave, sample_rate=8000)
    assert stems["vocals"].shape == wave.shape


@pytest.mark.parametrize("overrides, message", [
    (["model.overrides.filterz=[4,8]"], r"unknown model.overrides \['filterz'\]; expected some of \[.*'filters'"),
    (["model.overrides.signal.hop=3"], r"unknown model.overrides.signal \['hop'\]"),
    (["model.preset=spleeter:9stems"], "unknown preset 'spleeter:9stems'"),
    (["data.source=folder"], "data.source='folder' needs data.root"),
    (["training.precision=fp8"], "precision must be one of"),
])
def test_cli_train_stops_on_what_cannot_be_built(overrides, message, tmp_path, capsys):
    """Setup errors are one line and exit 2, before any output; a misspelt
    architecture override is one (Keras would have ignored it)."""
    args = ["train", "-o", str(tmp_path / "run")]
    for text in overrides:
        args += ["--set", text]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("keras-sep: ")
    assert re.search(message, err), err
    assert not (tmp_path / "run").exists()
