"""Weight fetching: source order, checksums, corruption, cache (no network)."""
import hashlib
import io
import json
import tarfile

import pytest

from keras_sep import pretrained

FILES = {"model.index": b"index bytes", "model.data-00000-of-00001": b"data bytes" * 100}


def _digest(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_preset(tmp_path, monkeypatch):
    """A preset whose 'official archive' is a local tar.gz behind a file:// URL."""
    archive = tmp_path / "2stems.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in FILES.items():
            info = tarfile.TarInfo("2stems/" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    preset = {
        "checkpoint": {
            "files": {n: _digest(d) for n, d in FILES.items()},
            "url": archive.as_uri(),
        }
    }
    table = {"test:2stems": preset}
    monkeypatch.setattr(pretrained, "presets", lambda: json.loads(json.dumps(table)))
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_SEP_WEIGHTS_DIR", raising=False)
    return table, archive


def _read(folder):
    return {n: (folder / n).read_bytes() for n in FILES}


def test_archive_source_is_verified_and_cached(fake_preset, tmp_path):
    import pathlib

    folder = pathlib.Path(pretrained.fetch_files("test:2stems"))
    assert _read(folder) == FILES
    # Second call: served from the cache even with the archive gone.
    fake_preset[1].unlink()
    assert pretrained.fetch_files("test:2stems") == str(folder)


def test_local_directory_comes_first(fake_preset, tmp_path):
    import pathlib

    local = tmp_path / "pretrained_models" / "2stems"
    local.mkdir(parents=True)
    for name, data in FILES.items():
        (local / name).write_bytes(data)
    fake_preset[1].unlink()  # the archive is not needed
    folder = pretrained.fetch_files("test:2stems", local_dir=str(local.parent))
    assert _read(pathlib.Path(folder)) == FILES


def test_corrupted_sources_give_a_clear_error(fake_preset, tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    for name, data in FILES.items():
        (local / name).write_bytes(data[:-1] + b"!")  # one byte changed
    fake_preset[0]["test:2stems"]["checkpoint"]["url"] = (tmp_path / "missing.tar.gz").as_uri()
    with pytest.raises(pretrained.PretrainedError) as error:
        pretrained.fetch_files("test:2stems", local_dir=str(local))
    message = str(error.value)
    assert "sha256 mismatch" in message and "missing.tar.gz" in message
    # Nothing half-fetched is left to be trusted later.
    assert not (tmp_path / "cache" / "test_2stems" / "files").exists()


def test_corrupted_cache_is_fetched_again(fake_preset):
    import pathlib

    folder = pathlib.Path(pretrained.fetch_files("test:2stems"))
    (folder / "model.index").write_bytes(b"tampered")
    pretrained.fetch_files("test:2stems")
    assert _read(folder) == FILES


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="spleeter:2stems"):
        pretrained.get_preset("spleeter:7stems")


def test_fetching_is_logged_not_printed(fake_preset, tmp_path, caplog, capsys):
    import logging

    bad = tmp_path / "bad"
    bad.mkdir()
    for name, data in FILES.items():
        (bad / name).write_bytes(data + b"!")
    with caplog.at_level(logging.INFO, logger="keras_sep.pretrained"):
        pretrained.fetch_files("test:2stems", local_dir=str(bad))
    messages = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "keras_sep.pretrained"]
    assert messages[0] == ("INFO", f"fetching test:2stems from directory {bad}")
    assert messages[1][0] == "WARNING" and "sha256 mismatch" in messages[1][1]
    assert messages[2] == ("INFO", f"fetching test:2stems from {fake_preset[1].as_uri()}")
    assert len(messages) == 3
    assert capsys.readouterr() == ("", "")


def test_load_model_takes_model_files_and_says_what_is_wrong_with_them(tmp_path):
    (tmp_path / "text.keras").write_text("not a model")
    (tmp_path / "folder.keras").mkdir()
    for name, message in [
        ("missing.keras", "no such model file (or preset)"),
        ("text.keras", "not a .keras model file (Keras' zip archive)"),
        ("folder.keras", "is a directory, not a .keras model file"),
    ]:
        path = tmp_path / name
        with pytest.raises(ValueError) as error:
            pretrained.load_model(path)
        assert str(error.value) == f"{path}: {message}"
    with pytest.raises(ValueError, match=r"unknown preset 'spleeter:7stems'; available: .*spleeter:2stems"):
        pretrained.load_model("spleeter:7stems")


def test_load_model_loads_a_saved_separator(tmp_path):
    import keras
    import numpy as np

    from keras_sep.models import UNetSeparator, WaveformSeparator

    keras.utils.set_random_seed(3)
    net = UNetSeparator(filters=(4, 8), bins=16, frames=16, name="tiny")
    model = WaveformSeparator(net, sample_rate=8000, frame_length=64, frame_step=16, overlap_frames=4)
    model.save(tmp_path / "tiny.keras")
    loaded = pretrained.load_model(str(tmp_path / "tiny.keras"))
    assert isinstance(loaded, WaveformSeparator)
    for saved, restored in zip(net.get_weights(), loaded.spectrogram_model.get_weights()):
        np.testing.assert_array_equal(saved, restored)

