"""LiteRT export and its TensorFlow-free runner against the Keras separator."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from keras_sep.models import UNetSeparator, WaveformSeparator
from keras_sep.separation import Separator

RATE = 8000


def snr_db(reference, estimate):
    error = np.sum((reference.astype(np.float64) - estimate) ** 2)
    return 10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / max(error, 1e-30))


def small_model(mask_extension="zeros", **kwargs):
    net = UNetSeparator(filters=(4, 8), bins=24, frames=16, name="small_unet", **kwargs)
    return WaveformSeparator(net, sample_rate=RATE, frame_length=64, frame_step=16, overlap_frames=4,
                             mask_extension=mask_extension)


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(5)
    return small_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    from keras_sep import export

    return export.export_litert(Separator(model), str(tmp_path_factory.mktemp("litert") / "small"))


def test_export_writes_the_network_and_its_resolved_config(model, exported):
    from keras_sep.pretrained import sha256

    config = json.load(open(os.path.join(exported, "keras_sep.json")))
    assert config["format"] == "keras_sep.litert"
    assert config["sha256"] == sha256(os.path.join(exported, "separator.tflite"))
    expected = dict(sample_rate=RATE, channels=2, instruments=["vocals", "accompaniment"], frame_length=64,
                    frame_step=16, bins=24, chunk_frames=16, overlap_frames=4, chunking="overlap",
                    mask_extension="zeros", separation_exponent=2.0)
    assert {k: config[k] for k in expected} == expected


@pytest.mark.parametrize("chunking", ["overlap", "spleeter"])
def test_runner_matches_the_keras_separator(model, exported, chunking):
    from keras_sep.litert import LiteRTSeparator

    lite = LiteRTSeparator(exported, chunking=chunking, threads=1)
    keras_sep = Separator(model, chunking=chunking, batch_size=1, fast=False)
    rng = np.random.default_rng(0)
    # Shorter than a chunk, one sample, and several chunks with seams.
    for length in (1, 300, 5000):
        wave = rng.uniform(-0.5, 0.5, (length, 2)).astype(np.float32)
        got, want = lite.separate(wave, sample_rate=RATE), keras_sep.separate(wave, sample_rate=RATE)
        for name in model.instruments:
            assert got[name].shape == (length, 2)
            assert snr_db(want[name], got[name]) >= 60, (length, name)


def test_runner_matches_with_the_average_extension_and_another_rate(tmp_path):
    """Masks extended above the cutoff, and a mono file at another rate
    (resampled there and back as Separator does)."""
    import keras

    from keras_sep import export
    from keras_sep.litert import LiteRTSeparator

    keras.utils.set_random_seed(6)
    model = small_model(mask_extension="average", separation_exponent=1.0)
    path = export.export_litert(model, str(tmp_path / "avg"))
    song = tmp_path / "mono.wav"
    sf.write(song, np.random.default_rng(1).uniform(-0.5, 0.5, 3000).astype(np.float32), 11025, subtype="FLOAT")
    got = LiteRTSeparator(path).separate(str(song))
    want = Separator(model, batch_size=1).separate(str(song))
    for name in model.instruments:
        assert got[name].shape == (3000, 2)
        assert snr_db(want[name], got[name]) >= 60


def test_separate_to_file_writes_what_separate_gives(model, exported, tmp_path):
    from keras_sep.litert import LiteRTSeparator

    song = tmp_path / "in" / "song.wav"
    song.parent.mkdir()
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, (4000, 2)).astype(np.float32)
    sf.write(song, wave, RATE, subtype="FLOAT")
    lite = LiteRTSeparator(os.path.join(exported, "separator.tflite"))
    targets = lite.separate_to_file(str(song), str(tmp_path / "out"))
    assert targets == {n: str(tmp_path / "out" / "song" / f"{n}.wav") for n in model.instruments}
    expected = lite.separate(wave, sample_rate=RATE)
    for name, target in targets.items():
        written, rate = sf.read(target, dtype="float32")
        assert rate == RATE
        np.testing.assert_array_equal(written, expected[name])
    with pytest.raises(FileExistsError, match="exists"):
        lite.separate_to_file(str(song), str(tmp_path / "out"))


def test_runner_needs_no_tensorflow(exported, tmp_path):
    code = (
        "import sys, numpy as np\n"
        "from keras_sep.litert import LiteRTSeparator\n"
        "stems = LiteRTSeparator(sys.argv[1]).separate(np.zeros((2000, 2), 'float32'))\n"
        "assert stems['vocals'].shape == (2000, 2)\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code, exported], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_not_an_export_and_bad_chunking_are_one_line_errors(exported, tmp_path):
    from keras_sep.litert import LiteRTSeparator

    with pytest.raises(ValueError, match="not a LiteRT export"):
        LiteRTSeparator(str(tmp_path))
    with pytest.raises(ValueError, match="chunking must be one of .* got 'chunky'"):
        LiteRTSeparator(exported, chunking="chunky")
    # An export of another format version is refused, not misread.
    other = tmp_path / "other"
    other.mkdir()
    config = json.load(open(os.path.join(exported, "keras_sep.json")))
    (other / "keras_sep.json").write_text(json.dumps(dict(config, format_version=0)))
    (other / "separator.tflite").write_bytes(open(os.path.join(exported, "separator.tflite"), "rb").read())
    with pytest.raises(ValueError, match="format_version 0, this keras_sep runs 1; export the model again"):
        LiteRTSeparator(str(other))


def test_mwf_separator_is_not_exported_to_litert(model, tmp_path):
    from keras_sep import export

    with pytest.raises(ValueError, match="mwf=True cannot be exported"):
        export.export_litert(Separator(model, mwf=True), str(tmp_path / "x"))
    assert not os.path.exists(tmp_path / "x")
