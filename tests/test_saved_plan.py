"""The saved plan: a Separator's traced chunk computation, saved, and run without Keras."""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf

from keras_sep import export
from keras_sep.separation import Separator
from keras_sep.separation.saved_plan import SavedPlanSeparator, read_config
from test_litert import RATE, small_model


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(8)
    return small_model(mask_extension="average")


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    wave = np.random.default_rng(4).uniform(-0.5, 0.5, (5000, 2)).astype(np.float32)
    path = str(tmp_path_factory.mktemp("song") / "song.wav")
    sf.write(path, wave, RATE, subtype="FLOAT")
    return path


def stems_of(separator, song, folder):
    targets = separator.separate_to_file(song, str(folder))
    return {name: sf.read(path, dtype="float32")[0] for name, path in targets.items()}


@pytest.mark.parametrize("phase", ["mixture", "griffin_lim"])
def test_the_saved_plan_separates_as_the_separator_it_was_saved_from(model, song, tmp_path, phase):
    options = dict(phase=phase, phase_iterations=2 if phase == "griffin_lim" else None)
    separator = Separator(model, **options)
    saved = export.export_plan(separator, str(tmp_path / "plan"), source={"model": "small"})
    for chunking in ("overlap", "spleeter"):
        expected = stems_of(Separator(model, chunking=chunking, **options), song,
                            tmp_path / f"keras-{chunking}")
        plan = SavedPlanSeparator(saved, chunking=chunking)
        assert plan.overlap_frames == (4 if chunking == "overlap" else 0)
        got = stems_of(plan, song, tmp_path / f"plan-{chunking}")
        assert set(got) == {"vocals", "accompaniment"}
        for name in expected:
            assert got[name].shape == (5000, 2)
            np.testing.assert_allclose(got[name], expected[name], atol=2e-6, rtol=0)
    config = read_config(saved)
    assert config["phase"] == phase and config["phase_iterations"] == (2 if phase == "griffin_lim" else 0)
    assert config["precision"] == "float32" and config["source"] == {"model": "small"}
    assert {k: config[k] for k in ("sample_rate", "bins", "chunk_frames", "overlap_frames", "chunking")} == dict(
        sample_rate=RATE, bins=24, chunk_frames=16, overlap_frames=4, chunking="overlap")
    assert "saved_model.pb" in config["files"] and all(len(d) == 64 for d in config["files"].values())


def test_an_array_goes_through_the_plan_as_through_the_separator(model, tmp_path):
    separator = Separator(model, batch_size=1)
    plan = SavedPlanSeparator(export.export_plan(separator, str(tmp_path / "plan")))
    mixture = np.random.default_rng(2).normal(size=(3001, 2)).astype(np.float32) * 0.3
    expected, got = separator.separate(mixture), plan.separate(mixture)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=2e-6, rtol=0)


def test_what_cannot_be_saved_as_one_chunk_computation_is_refused(model, tmp_path):
    with pytest.raises(ValueError, match="mwf=True"):
        export.export_plan(Separator(model, mwf=True), str(tmp_path / "mwf"))
    open_unmix = types.SimpleNamespace(model=types.SimpleNamespace(name="umx"), mwf=False)
    with pytest.raises(ValueError, match="umx: only U-Net separators"):
        export.export_plan(open_unmix, str(tmp_path / "umx"))
    assert not os.path.exists(tmp_path / "mwf") and not os.path.exists(tmp_path / "umx")


def test_a_folder_that_is_no_saved_plan_of_this_version_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a saved plan"):
        read_config(tmp_path)
    (tmp_path / "keras_sep.json").write_text(json.dumps({"format": "keras_sep.litert"}))
    with pytest.raises(ValueError, match="not a keras_sep saved plan config"):
        read_config(tmp_path)
    (tmp_path / "keras_sep.json").write_text(json.dumps({"format": "keras_sep.plan", "format_version": 99}))
    with pytest.raises(ValueError, match="format_version 99, this keras_sep runs 1"):
        read_config(tmp_path)


# A fresh process that runs a saved plan as keras-sep does: TensorFlow without Keras.
WITHOUT_KERAS = (
    "import sys\n"
    "import numpy as np\n"
    "from keras_sep import _cli_process\n"
    "_cli_process.start_tensorflow(False, keras=False)\n"
    "from keras_sep.separation.saved_plan import SavedPlanSeparator\n"
    "stems = SavedPlanSeparator(sys.argv[1]).separate(np.load(sys.argv[2]))\n"
    "np.savez(sys.argv[3], **stems)\n"
    "print('keras imported:', 'keras' in sys.modules)\n"
    "import tensorflow as tf\n"
    "print('path entries:', all(isinstance(entry, str) for entry in tf.__path__))\n"
    "import keras\n"  # still there for what needs it
    "print('keras works:', keras.layers.Dense(3)(np.ones((1, 2), 'float32')).shape == (1, 3))\n"
)


def test_a_fresh_process_runs_the_plan_without_importing_keras(model, tmp_path):
    separator = Separator(model, batch_size=1)
    saved = export.export_plan(separator, str(tmp_path / "plan"))
    mixture = np.random.default_rng(6).normal(size=(2000, 2)).astype(np.float32) * 0.3
    np.save(tmp_path / "mix.npy", mixture)
    done = subprocess.run([sys.executable, "-c", WITHOUT_KERAS, saved, str(tmp_path / "mix.npy"),
                           str(tmp_path / "out.npz")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["keras imported: False", "path entries: True", "keras works: True"]
    expected = separator.separate(mixture)
    with np.load(tmp_path / "out.npz") as got:
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], atol=2e-6, rtol=0)
