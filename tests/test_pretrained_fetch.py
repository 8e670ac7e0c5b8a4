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
