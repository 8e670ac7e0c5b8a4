"""DDSP SavedModel export: both signatures reloaded in a fresh process at two
batch sizes match the Keras model; in-graph CREPE matches track_pitch."""
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_sep.data import track_pitch
from keras_sep.ddsp_export import crepe_f0, export_ddsp_saved_model
from keras_sep.data.pitch import crepe_model
from keras_sep.models import ddsp_autoencoder
from keras_sep.ops.loudness import loudness_db

RATE, STEP = 16000, 64

RELOAD = """
import sys, numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
data = np.load(sys.argv[2])
out = {}
for batch in (1, 3):
    f0, ld, audio = (tf.constant(data[k][:batch]) for k in ("f0_hz", "loudness_db", "audio"))
    out[f"controls{batch}"] = served.signatures["serving_default"](f0_hz=f0, loudness_db=ld)["audio"].numpy()
    kwargs = {"audio": audio} if sys.argv[3] == "crepe" else {"audio": audio, "f0_hz": f0}
    for name, value in served.signatures["audio"](**kwargs).items():
        out[f"audio{batch}/{name}"] = value.numpy()
np.savez(sys.argv[4], **out)
"""


def _melody(batch=3, seconds=0.5):
    t = np.arange(int(seconds * RATE) + 37) / RATE  # not a whole number of frames
    hz = np.array([220.0, 330.0, 440.0])[:batch, None]
    return (0.4 * np.sin(2 * np.pi * hz * t))[..., None].astype("float32")


@pytest.mark.slow
@pytest.mark.parametrize("pitch", ["crepe", "input"])
def test_saved_model_reloads_in_a_fresh_process(tmp_path, pitch):
    model = ddsp_autoencoder(hidden_units=8, gru_units=8, mlp_layers=1, harmonics=8, noise_bands=9,
                             reverb_length=64, noise_seed=5)
    audio = _melody()
    frames = audio.shape[1] // STEP
    trimmed = audio[:, : frames * STEP]
    f0 = np.stack([track_pitch(a[:, 0], RATE, STEP, method="crepe")[0] for a in trimmed])[..., None]
    ld = loudness_db(trimmed, RATE, STEP).numpy()
    np.savez(tmp_path / "in.npz", f0_hz=f0, loudness_db=ld, audio=audio)
    path = export_ddsp_saved_model(model, str(tmp_path / "ddsp" / "1"), pitch=pitch)
    subprocess.run([sys.executable, "-c", RELOAD, path, str(tmp_path / "in.npz"), pitch, str(tmp_path / "out.npz")],
                   check=True)
    out = np.load(tmp_path / "out.npz")
    expected = model({"f0_hz": f0, "loudness_db": ld}).numpy()
    for batch in (1, 3):
        np.testing.assert_allclose(out[f"controls{batch}"], expected[:batch], atol=1e-5)
        np.testing.assert_allclose(out[f"audio{batch}/loudness_db"], ld[:batch], atol=1e-4)
        np.testing.assert_allclose(out[f"audio{batch}/f0_hz"], f0[:batch], rtol=1e-3)
        np.testing.assert_allclose(out[f"audio{batch}/audio"], expected[:batch], atol=1e-3)
        assert (f"audio{batch}/f0_confidence" in out.files) == (pitch == "crepe")
    info = json.loads((tmp_path / "ddsp" / "1" / "assets.extra" / "keras_sep.json").read_text())
    assert info["sample_rate"] == RATE and info["frame_step"] == STEP and info["pitch"] == pitch


def test_in_graph_crepe_matches_track_pitch():
    audio = _melody(2, 0.3)
    f0, confidence = crepe_f0(crepe_model("tiny"), tf.constant(audio), STEP)
    for row in range(2):
        ref_f0, ref_confidence = track_pitch(audio[row, :, 0], RATE, STEP, method="crepe")
        np.testing.assert_allclose(f0[row, :, 0], ref_f0, rtol=1e-3)
        np.testing.assert_allclose(confidence[row, :, 0], ref_confidence, atol=1e-3)


def test_export_argument_checks(tmp_path):
    model = ddsp_autoencoder(sample_rate=22050, hidden_units=4, gru_units=4, mlp_layers=1, reverb_length=0)
    with pytest.raises(ValueError, match="16000 Hz model"):
        export_ddsp_saved_model(model, str(tmp_path / "x"))
    with pytest.raises(ValueError, match="pitch must be"):
        export_ddsp_saved_model(model, str(tmp_path / "x"), pitch="pyin")
