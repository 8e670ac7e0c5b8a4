"""``keras-sep separate FOLDER``: its audio files, recursively, in one process."""
import numpy as np
import pytest
import soundfile as sf

from keras_sep import audio, cli
from keras_sep.separation import Separator
from test_separator import RATE, tiny_model


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(13)
    return tiny_model()


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return str(path)


def _song(path, length, seed, **kwargs):
    wave = np.random.default_rng(seed).uniform(-0.5, 0.5, (length, 2)).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, RATE, **kwargs)
    return sf.read(path, dtype="float32")[0]


def test_audio_files_are_taken_by_extension_and_hidden_ones_skipped(tmp_path):
    for name in ("a/b.wav", "a/c/d.Flac", "e.m4a", "notes.txt", "a/cover.jpg", "._e.wav", ".git/x.wav", "f"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found, others = audio.audio_files(tmp_path)
    assert found == ["a/b.wav", "a/c/d.Flac", "e.m4a"]
    assert others == ["._e.wav", ".git", "a/cover.jpg", "f", "notes.txt"]


def test_separate_a_folder_keeps_its_layout_and_goes_on_after_a_bad_file(model, model_file, tmp_path, capsys):
    music = tmp_path / "music"
    waves = {
        "a/b.wav": _song(music / "a" / "b.wav", 3000, 1, subtype="FLOAT"),
        "c.flac": _song(music / "c.flac", 2000, 2, subtype="PCM_24"),
        "a/x/y.wav": _song(music / "a" / "x" / "y.wav", 1500, 3, subtype="FLOAT"),
    }
    (music / "a" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    (music / "a" / "notes.txt").write_text("not audio")
    out = tmp_path / "out"
    code = cli.main(["separate", str(music), "-o", str(out), "-m", model_file])
    captured = capsys.readouterr()
    assert code == 1  # broken.wav failed, the others are there
    errors = [line for line in captured.err.splitlines() if "broken.wav" in line]
    assert len(errors) == 1 and "cannot read audio" in errors[0]
    assert any(line.endswith("notes.txt: skipped, not an audio file") for line in captured.err.splitlines())
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.wav"))
    assert written == sorted(
        f"{track}/{name}.wav" for track in ("a/b", "c", "a/x/y") for name in ("vocals", "accompaniment")
    )
    separator = Separator(model)
    for relative, wave in waves.items():
        track = relative.rsplit(".", 1)[0]
        expected = separator.separate(wave, sample_rate=RATE)
        for name in model.instruments:
            data, rate = sf.read(out / track / f"{name}.wav", dtype="float32")
            assert rate == RATE
            np.testing.assert_allclose(data, expected[name], atol=1e-5)
    # Each separated input is listed with its stems on stdout, in order.
    listed = [line[:-1] for line in captured.out.splitlines() if not line.startswith(" ")]
    assert listed == [str(music / r) for r in ("a/b.wav", "a/x/y.wav", "c.flac")]


def test_a_folder_of_good_files_exits_0_and_one_without_audio_fails(model_file, tmp_path, capsys):
    _song(tmp_path / "good" / "s.wav", 1000, 4, subtype="FLOAT")
    assert cli.main(["separate", str(tmp_path / "good"), "-o", str(tmp_path / "out"), "-m", model_file]) == 0
    assert (tmp_path / "out" / "s" / "vocals.wav").exists()
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.md").write_text("")
    capsys.readouterr()
    assert cli.main(["separate", str(tmp_path / "empty"), "-o", str(tmp_path / "out2"), "-m", model_file]) == 1
    assert "empty: no audio files in this folder" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()
