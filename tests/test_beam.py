"""keras_sep.beam on Beam's in-process DirectRunner: the stems equal the
Separator's (the CLI's) for the same model, bad files land in the
dead-letter file, re-runs skip finished tracks, and remote filesystems are
staged through local files."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("apache_beam")

from apache_beam.io.filesystem import FileMetadata  # noqa: E402
from apache_beam.io.localfilesystem import LocalFileSystem  # noqa: E402

from keras_sep import beam, cli  # noqa: E402
from keras_sep.separation import Separator  # noqa: E402
from test_separator import RATE, tiny_model  # noqa: E402

IN_PROCESS = ["--direct_num_workers=1", "--direct_running_mode=in_memory"]
# Lengths in samples: a short stereo clip, one over a block (2**18) read at a time, a mono one.
SONGS = {"short": (3 * RATE, 2), "long": ((1 << 18) + 3001, 2), "mono": (RATE + 17, 1)}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(5)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    tiny_model().save(path)
    return str(path)


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    folder = tmp_path_factory.mktemp("music")
    rng = np.random.default_rng(3)
    for name, shape in SONGS.items():
        sf.write(folder / f"{name}.wav", rng.uniform(-0.5, 0.5, shape).astype(np.float32), RATE, subtype="FLOAT")
    (folder / "bad.wav").write_text("not audio")
    return folder


@pytest.fixture(scope="module")
def reference(model_file, music, tmp_path_factory):
    """The stems `keras-sep separate` writes: Separator.separate_to_file."""
    folder = tmp_path_factory.mktemp("reference")
    separator = Separator.from_preset(model_file)
    return {name: separator.separate_to_file(music / f"{name}.wav", folder) for name in SONGS}


def assert_same_stems(folder, reference):
    for name, stems in reference.items():
        for instrument, path in stems.items():
            got, rate = sf.read(os.path.join(folder, name, f"{instrument}.wav"), dtype="float32")
            expected, _ = sf.read(path, dtype="float32")
            assert rate == RATE and got.shape == expected.shape == (SONGS[name][0], 2)
            np.testing.assert_array_equal(got, expected)


def test_stems_equal_the_separators_and_the_bad_file_is_a_dead_letter(model_file, music, reference, tmp_path):
    out = tmp_path / "stems"
    counts = beam.separate_files(str(music / "*.wav"), str(out), model_file, pipeline_args=IN_PROCESS)
    assert counts == {"separated": 3, "skipped": 0, "failed": 1}
    assert_same_stems(out, reference)
    (line,) = (out / "failed.tsv").read_text().splitlines()
    path, message = line.split("\t")
    assert path == str(music / "bad.wav")
    assert message.startswith(f"{music / 'bad.wav'}: cannot read audio")
    assert sorted(os.listdir(out)) == ["failed.tsv", "long", "mono", "short"]  # no temporary files left


def test_a_rerun_skips_tracks_whose_stems_all_exist(model_file, music, tmp_path):
    out = tmp_path / "stems"
    pattern = str(music / "[lm]o*.wav")  # long, mono
    assert beam.separate_files(pattern, str(out), model_file, pipeline_args=IN_PROCESS)["separated"] == 2
    times = {p: os.stat(out / p).st_mtime_ns for p in ("long/vocals.wav", "mono/vocals.wav", "mono/accompaniment.wav")}
    os.remove(out / "long" / "accompaniment.wav")  # an unfinished track: separated again
    counts = beam.separate_files(pattern, str(out), model_file, pipeline_args=IN_PROCESS)
    assert counts == {"separated": 1, "skipped": 1, "failed": 0}
    assert (out / "long" / "accompaniment.wav").exists()
    assert os.stat(out / "long/vocals.wav").st_mtime_ns != times.pop("long/vocals.wav")
    assert {p: os.stat(out / p).st_mtime_ns for p in times} == times
    assert (out / "failed.tsv").read_text() == ""  # this run's failures: none
    counts = beam.separate_files(pattern, str(out), model_file, pipeline_args=IN_PROCESS, overwrite=True)
    assert counts == {"separated": 2, "skipped": 0, "failed": 0}
    assert os.stat(out / "mono/vocals.wav").st_mtime_ns != times["mono/vocals.wav"]


def test_inputs_that_would_write_the_same_stems_fail_but_one(model_file, tmp_path):
    for folder in ("a", "b"):
        os.makedirs(tmp_path / "in" / folder)
        sf.write(tmp_path / "in" / folder / "01.wav", np.full((RATE, 2), 0.1, np.float32), RATE)
    pattern = str(tmp_path / "in" / "*" / "01.wav")
    counts = beam.separate_files(pattern, str(tmp_path / "out"), model_file, pipeline_args=IN_PROCESS)
    assert counts == {"separated": 1, "skipped": 0, "failed": 1}
    (line,) = (tmp_path / "out" / "failed.tsv").read_text().splitlines()
    assert line.startswith(f"{tmp_path / 'in' / 'b' / '01.wav'}\tits stems would have the names of ")
    apart = tmp_path / "apart"
    counts = beam.separate_files(pattern, str(apart), model_file, pipeline_args=IN_PROCESS,
                                 filename_format="{foldername}/{track}/{instrument}.{codec}")
    assert counts == {"separated": 2, "skipped": 0, "failed": 0}
    assert sorted(os.listdir(apart / "a" / "01")) == ["accompaniment.wav", "vocals.wav"]


def test_a_missing_model_stops_the_job_before_it_starts_and_no_match_is_a_warning(model_file, music, tmp_path, capfd,
                                                                                    caplog):
    missing = str(tmp_path / "missing.keras")
    assert cli.main(["separate-beam", str(music / "*.wav"), "-o", str(tmp_path / "out"), "-m", missing]) == 2
    assert capfd.readouterr().err.splitlines()[-1] == f"keras-sep: {missing}: no such model file (or preset)"
    assert not (tmp_path / "out").exists()
    counts = beam.separate_files(str(music / "*.flac"), str(tmp_path / "out"), model_file, pipeline_args=IN_PROCESS)
    assert counts == {"separated": 0, "skipped": 0, "failed": 0}
    assert f"no file matches {music / '*.flac'}" in caplog.text


class FakeRemoteFileSystem(LocalFileSystem):
    """``fakeremote://PATH`` is ``ROOT/PATH``: a remote filesystem for Beam
    whose files the decoders and Keras cannot open by name."""

    ROOT = None
    PREFIX = "fakeremote://"

    @classmethod
    def scheme(cls):
        return "fakeremote"

    def _local(self, path):
        assert path.startswith(self.PREFIX), path
        return os.path.join(self.ROOT, path[len(self.PREFIX):])

    def _remote(self, path):
        return self.PREFIX + os.path.relpath(path, self.ROOT)

    def join(self, basepath, *paths):
        return "/".join([basepath.rstrip("/"), *paths])

    def split(self, path):
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def _list(self, dir_or_prefix):
        for folder, _, names in os.walk(self._local(dir_or_prefix)):
            for name in names:
                path = os.path.join(folder, name)
                yield FileMetadata(self._remote(path), os.path.getsize(path), os.path.getmtime(path))

    def metadata(self, path):
        local = self._local(path)
        return FileMetadata(path, os.path.getsize(local), os.path.getmtime(local))

    def copy(self, sources, destinations):
        return super().copy([self._local(p) for p in sources], [self._local(p) for p in destinations])

    def rename(self, sources, destinations):
        return super().rename([self._local(p) for p in sources], [self._local(p) for p in destinations])

    def delete(self, paths):
        for path in map(self._local, paths):
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)


for _name in ("mkdirs", "create", "open", "exists", "size", "last_updated", "checksum"):
    def _local_path(self, path, *args, _method=getattr(LocalFileSystem, _name), **kwargs):
        return _method(self, self._local(path), *args, **kwargs)

    setattr(FakeRemoteFileSystem, _name, _local_path)


def test_remote_inputs_model_and_stems_are_staged_through_local_files(model_file, music, reference, tmp_path,
                                                                      monkeypatch, capsys):
    monkeypatch.setattr(FakeRemoteFileSystem, "ROOT", str(tmp_path))
    os.symlink(music, tmp_path / "music")
    os.symlink(model_file, tmp_path / "tiny.keras")
    argv = ["separate-beam", "fakeremote://music/*.wav", "-o", "fakeremote://stems", "-m", "fakeremote://tiny.keras",
            *IN_PROCESS]
    assert cli.main(argv) == 1  # bad.wav failed
    assert_same_stems(tmp_path / "stems", reference)
    bad = "fakeremote://music/bad.wav"
    assert (tmp_path / "stems" / "failed.tsv").read_text().startswith(f"{bad}\t{bad}: cannot read audio")
    capsys.readouterr()
    assert cli.main(argv) == 1
    assert capsys.readouterr().out.splitlines()[0] == "separated 0, skipped 3 (stems existed), failed 1"
    assert (tmp_path / "stems" / "failed.tsv").read_text().count("\n") == 1
