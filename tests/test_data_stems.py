"""Stems folders: discovery, chunks, resampling, caches, target groups, batching."""
import os

import numpy as np
import pytest

from keras_sep import audio
from keras_sep import data

RATE = 44100
STEMS = ("bass", "drums", "other", "vocals")
STEP = 1e-6  # ramp increment per sample


def stem_signal(track, stem, length):
    """A ramp whose first value tells the track, stem and offset of any chunk.

    Left: ``0.02 * (5 * track + stem) + 0.001 + STEP * t``; right is left plus
    0.005, so a channel swap shows too.
    """
    left = 0.02 * (5 * track + stem) + 0.001 + STEP * np.arange(length)
    return np.stack([left, left + 0.005], axis=1).astype(np.float32)


def identify(chunk):
    """``(track, stem, offset, swapped)`` of a chunk made by :func:`stem_signal`."""
    chunk = np.asarray(chunk, np.float64)
    swapped = chunk[0, 0] > chunk[0, 1]
    left = chunk[:, 1] if swapped else chunk[:, 0]
    code = int(np.floor(left[0] / 0.02))
    offset = int(round((left[0] - 0.02 * code - 0.001) / STEP))
    expected = 0.02 * code + 0.001 + STEP * (offset + np.arange(len(left)))
    np.testing.assert_allclose(left, expected, atol=2e-6)  # contiguous samples
    return code // 5, code % 5, offset, bool(swapped)


def make_stems_folder(root, num_tracks=3, subset="train", stems=STEMS, base_length=8000,
                      mixture=True):
    """Tracks ``root/subset/track{k}`` of ``base_length + 1000 k`` samples."""
    arrays = {}
    for track in range(num_tracks):
        length = base_length + 1000 * track
        folder = os.path.join(root, subset, f"track{track}")
        os.makedirs(folder)
        signals = {name: stem_signal(track, i, length) for i, name in enumerate(stems)}
        for name, signal in signals.items():
            audio.save(os.path.join(folder, f"{name}.wav"), signal, RATE)
        if mixture:
            audio.save(os.path.join(folder, "mixture.wav"), sum(signals.values()), RATE)
        arrays[f"track{track}"] = signals
    return arrays


def take(dataset, count=None):
    return list(dataset.take(count).as_numpy_iterator()) if count else list(
        dataset.as_numpy_iterator())


def test_find_tracks_and_stem_discovery(tmp_path):
    make_stems_folder(tmp_path, num_tracks=2)
    make_stems_folder(tmp_path, num_tracks=1, subset="test", stems=("piano", "violin"))
    tracks = data.find_tracks(tmp_path, "train")
    assert list(tracks) == ["track0", "track1"]
    assert set(tracks["track0"]) == set(STEMS) | {"mixture"}
    assert data.stems.common_stems(tracks) == STEMS
    custom = data.find_tracks(tmp_path, "test")
    assert data.stems.common_stems(custom) == ("piano", "violin")
    with pytest.raises(ValueError, match="has no stem"):
        data.stems.common_stems(custom, ["piano", "vocals"])
    with pytest.raises(ValueError, match="no such dataset folder"):
        data.find_tracks(tmp_path, "valid")


def test_random_chunks_shapes_and_contents(tmp_path):
    make_stems_folder(tmp_path)
    ds = data.stems_dataset(tmp_path, samples=1000, samples_per_track=4, seed=3, progress=False)
    assert set(ds.element_spec) == set(STEMS) | {"mixture"}
    for spec in ds.element_spec.values():
        assert spec.shape == (1000, 2) and spec.dtype == "float32"
    examples = take(ds)
    assert len(examples) == 12
    for index, example in enumerate(examples):
        found = {name: identify(example[name]) for name in STEMS}
        assert {f[0] for f in found.values()} == {index // 4}  # track by position
        assert len({f[2] for f in found.values()}) == 1  # one offset for all stems
        assert [found[name][1] for name in STEMS] == [0, 1, 2, 3]
        assert 0 <= found["vocals"][2] <= 8000 + 1000 * (index // 4) - 1000
        np.testing.assert_allclose(
            example["mixture"], sum(example[name] for name in STEMS), atol=1e-6
        )
    offsets = {identify(e["vocals"])[2] for e in examples}
    assert len(offsets) > 6  # offsets are drawn, not fixed


def test_sequential_chunks_cover_each_track(tmp_path):
    make_stems_folder(tmp_path, num_tracks=2)
    ds = data.stems_dataset(
        tmp_path, samples=3000, random_chunks=False, stems=["vocals"], progress=False
    )
    found = [identify(e["vocals"])[::2] for e in take(ds)]
    # Whole chunks only: 8000 samples give offsets 0 and 3000; 9000 give 0, 3000, 6000.
    assert found == [(0, 0), (0, 3000), (1, 0), (1, 3000), (1, 6000)]


def test_resampled_mono_files_become_stereo(tmp_path):
    folder = tmp_path / "train" / "song"
    os.makedirs(folder)
    tone = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    audio.save(folder / "voice.wav", tone * 0.5, 22050)
    audio.save(folder / "piano.wav", np.stack([tone, tone], 1) * 0.25, 22050)
    ds = data.stems_dataset(tmp_path, seconds=0.5, samples_per_track=2, progress=False)
    store_length = data.StemStore(data.find_tracks(tmp_path), ("voice",), progress=False).lengths
    assert abs(int(store_length[0]) - RATE) <= 2
    example = take(ds, 1)[0]
    assert example["voice"].shape == (22050, 2)
    np.testing.assert_array_equal(example["voice"][:, 0], example["voice"][:, 1])
    np.testing.assert_allclose(np.abs(example["voice"]).max(), 0.5, atol=0.02)
    np.testing.assert_allclose(example["mixture"], example["voice"] + example["piano"], atol=1e-6)


def test_npy_cache_is_reused(tmp_path, monkeypatch):
    make_stems_folder(tmp_path / "set", num_tracks=2)
    cache = tmp_path / "cache"
    first = take(data.stems_dataset(tmp_path / "set", samples=500, samples_per_track=2,
                                    cache=cache, progress=False))
    assert len(list(cache.glob("*.npy"))) == 2 * 5  # 4 stems + mixture per track

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(audio, "load", no_decoding)
    again = take(data.stems_dataset(tmp_path / "set", samples=500, samples_per_track=2,
                                    cache=cache, progress=False))
    for a, b in zip(first, again):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
    store = data.StemStore(data.find_tracks(tmp_path / "set"), ("vocals",), cache=cache,
                           progress=False)
    assert isinstance(store.arrays[0]["vocals"], np.memmap)


def test_memory_cache_is_reused(tmp_path, monkeypatch):
    make_stems_folder(tmp_path, num_tracks=1)
    data.stems_dataset(tmp_path, samples=500, progress=False)
    monkeypatch.setattr(audio, "load", lambda *a, **k: pytest.fail("decoded again"))
    ds = data.stems_dataset(tmp_path, samples=500, seed=9, progress=False)
    assert take(ds, 1)[0]["vocals"].shape == (500, 2)


def test_target_groups_sum_stems_exactly(tmp_path):
    arrays = make_stems_folder(tmp_path, num_tracks=1)
    groups = {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}
    ds = data.stems_dataset(tmp_path, samples=2000, random_chunks=False, targets=groups,
                            progress=False)
    assert set(ds.element_spec) == {"mixture", "vocals", "accompaniment"}
    stems = arrays["track0"]
    for i, example in enumerate(take(ds)):
        span = slice(2000 * i, 2000 * (i + 1))
        expected = stems["drums"][span] + stems["bass"][span] + stems["other"][span]
        np.testing.assert_array_equal(example["vocals"], stems["vocals"][span])
        np.testing.assert_allclose(example["accompaniment"], expected, rtol=0, atol=1e-7)
    with pytest.raises(ValueError, match="must group stems"):
        data.stems_dataset(tmp_path, samples=100, targets={"keys": ["piano"]}, progress=False)


def test_batch_shapes_and_shuffle_determinism(tmp_path):
    make_stems_folder(tmp_path, num_tracks=2)

    def batches(seed):
        ds = data.stems_dataset(tmp_path, samples=400, samples_per_track=3, seed=seed,
                                progress=False)
        return take(data.batch(ds, 4, shuffle_buffer=6, seed=seed), 3)

    first, again, other = batches(1), batches(1), batches(2)
    assert first[0]["vocals"].shape == (4, 400, 2)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["mixture"], b["mixture"])
    assert not np.array_equal(first[0]["mixture"], other[0]["mixture"])
