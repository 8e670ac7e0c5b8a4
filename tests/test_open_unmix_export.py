"""Open-Unmix as a SavedModel (one output per stem, Wiener filter included),
reloaded in a fresh process, and `keras-sep export` / `evaluate` with it."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from keras_sep import cli, export
from keras_sep.separation import Separator

sys.path.insert(0, os.path.dirname(__file__))
from test_open_unmix_separation import RATE, tiny_model  # noqa: E402

LOAD_AND_RUN = """
import sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
inputs = np.load(sys.argv[2])
out = {}
for key in inputs.files:
    for name, value in serve(waveform=tf.constant(inputs[key])).items():
        out[f"{key}/{name}"] = value.numpy()
np.savez(sys.argv[3], **out)
"""


@pytest.mark.slow
def test_saved_model_reproduces_the_separator_in_a_fresh_process(tmp_path):
    model = tiny_model(niter=1, residual=True)
    sep = Separator(model)
    path = export.export_saved_model(sep, str(tmp_path / "serving" / "umx" / "1"))
    meta = json.load(open(os.path.join(path, "assets.extra", "keras_sep.json")))
    assert meta["instruments"] == ["vocals", "drums", "bass", "other", "residual"]
    rng = np.random.default_rng(0)
    inputs = {f"n{n}": rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32) for n in (1, 3001)}
    np.savez(tmp_path / "in.npz", **inputs)
    subprocess.run(
        [sys.executable, "-c", LOAD_AND_RUN, path, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    served = np.load(tmp_path / "out.npz")
    for key, wave in inputs.items():
        expected = sep.separate(wave, sample_rate=RATE)
        for name in model.instruments:
            assert served[f"{key}/{name}"].shape == wave.shape
            np.testing.assert_allclose(served[f"{key}/{name}"], expected[name], atol=1e-5)


@pytest.mark.slow
def test_cli_exports_and_evaluates_four_stems(tmp_path, capsys):
    model_file = str(tmp_path / "umx.keras")
    tiny_model().save(model_file)
    assert cli.main(["export", str(tmp_path / "saved"), "-m", model_file]) == 0
    assert os.path.isfile(tmp_path / "saved" / "saved_model.pb")

    rng = np.random.default_rng(5)
    folder = tmp_path / "data" / "test" / "song"
    folder.mkdir(parents=True)
    for name in ("vocals", "drums", "bass", "other"):
        sf.write(folder / f"{name}.wav", rng.uniform(-0.3, 0.3, (2 * RATE, 2)).astype(np.float32), RATE)
    args = ["evaluate", str(tmp_path / "data"), "-m", model_file, "--json", str(tmp_path / "scores.json")]
    for name in ("vocals", "drums", "bass", "other"):
        args += ["--target", f"{name}={name}"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    for name in ("vocals", "drums", "bass", "other"):
        assert f"| model | {name} |" in printed
    saved = json.load(open(tmp_path / "scores.json"))
    assert "model" in saved["tracks"]["song"]
