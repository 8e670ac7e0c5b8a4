"""MUSDB18 through the musdb package, on a tiny fake MUSDB18-HQ (wav) folder."""
import numpy as np
import pytest

from keras_sep import data
from test_data_stems import STEMS, identify, make_stems_folder, take

pytest.importorskip("musdb")


@pytest.fixture(autouse=True)
def _probe_without_ffmpeg(monkeypatch):
    """musdb asks ffprobe (through stempeg) for each file's length, even for
    wav. Where ffmpeg is not installed, answer from libsndfile instead, so the
    rest of musdb's code path still runs for real."""
    import shutil

    if shutil.which("ffprobe"):
        return
    import soundfile
    import stempeg

    class Info:
        def __init__(self, path):
            self._info = soundfile.info(path)

        def samples(self, stream):
            return self._info.frames

        def duration(self, stream):
            return self._info.frames / self._info.samplerate

        def rate(self, stream):
            return self._info.samplerate

    monkeypatch.setattr(stempeg, "Info", Info)


def test_musdb_wav_layout_gives_the_stems_example_format(tmp_path):
    make_stems_folder(tmp_path, num_tracks=2, subset="train")
    make_stems_folder(tmp_path, num_tracks=1, subset="test")
    tracks = data.musdb_tracks(tmp_path, subset="train", is_wav=True)
    assert list(tracks) == ["track0", "track1"]
    assert set(tracks["track0"]) == {"vocals", "drums", "bass", "other", "mixture"}
    ds = data.musdb_dataset(
        tmp_path, subset="train", is_wav=True, samples=500, samples_per_track=3,
        targets={"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]},
        seed=1, progress=False,
    )
    examples = take(ds)
    assert len(examples) == 6
    for index, example in enumerate(examples):
        assert example["mixture"].shape == (500, 2)
        track, stem, _, _ = identify(example["vocals"])
        assert (track, stem) == (index // 3, STEMS.index("vocals"))
        np.testing.assert_allclose(
            example["mixture"], example["vocals"] + example["accompaniment"], atol=1e-6
        )
    test = data.musdb_dataset(tmp_path, subset="test", is_wav=True, samples=500,
                              random_chunks=False, progress=False)
    assert len(take(test)) == 16  # 8000 samples in whole 500-sample chunks


def test_musdb_mp4_sources_are_decoded_through_musdb(tmp_path, monkeypatch):
    # No .stem.mp4 offline: check the loader pairs musdb tracks become, with
    # musdb's DB replaced by a stand-in exposing the same attributes.
    import musdb

    class FakeSource:
        rate = 22050

        def __init__(self, value):
            self.audio = np.full((2205, 2), value, np.float64)

    class FakeTrack:
        name, path = "song", str(tmp_path / "song.stem.mp4")
        sources = {name: FakeSource(0.1 * (i + 1)) for i, name in enumerate(STEMS)}

    class FakeDB:
        def __init__(self, root, subsets, split, is_wav):
            assert (subsets, is_wav) == ("train", False)
            self.tracks = [FakeTrack()]

    monkeypatch.setattr(musdb, "DB", FakeDB)
    ds = data.musdb_dataset(tmp_path, samples=4000, samples_per_track=1, progress=False)
    example = take(ds)[0]
    np.testing.assert_allclose(example["vocals"][:4000], 0.4, atol=1e-3)
    np.testing.assert_allclose(example["mixture"], 1.0, atol=1e-3)
