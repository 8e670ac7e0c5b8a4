"""The built-in rendered Bach chorales: layout, sums, soprano notes, reuse."""
import json
import os

import numpy as np
import pytest

from keras_sep import audio
from keras_sep import data
from keras_sep.data import bach

pytest.importorskip("music21")
pytest.importorskip("tinysoundfont")
pytest.importorskip("pretty_midi")

STEMS = ("alto", "bass", "drums", "tenor", "vocals")


@pytest.fixture(scope="module")
def chorales_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bach")
    return data.bach_chorales(num_tracks=2, seconds=8.0, seed=0, root=root, progress=False)


def track_folders(root):
    return sorted(
        os.path.join(root, subset, name)
        for subset in ("train", "test")
        if os.path.isdir(os.path.join(root, subset))
        for name in os.listdir(os.path.join(root, subset))
    )


def soprano_from_music21(record):
    """Soprano notes ``(start_s, midi)`` straight from music21, at the track's tempo."""
    from music21 import corpus

    score = corpus.parse(record["chorale"])
    part = next(p for p in score.parts if "soprano" in (p.partName or "").lower())
    beat = 60.0 / record["bpm"]
    return [(float(n.offset) * beat, n.pitch.midi + record["transpose"])
            for n in part.stripTies().flatten().notes if n.duration.quarterLength > 0]


def key_energy(wave, key, rate=44100):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    freqs = np.fft.rfftfreq(len(wave), 1 / rate)
    f0 = 440.0 * 2 ** ((key - 69) / 12)
    return spectrum[(freqs > f0 * 0.98) & (freqs < f0 * 1.02)].sum()


@pytest.mark.slow
def test_layout_rate_and_stems_sum_to_mixture(chorales_root):
    folders = track_folders(chorales_root)
    assert len(folders) == 2 and len(os.listdir(os.path.join(chorales_root, "test"))) == 1
    for folder in folders:
        stems = {}
        for name in STEMS:
            rate, channels, frames = audio.info(os.path.join(folder, f"{name}.wav"))
            assert (rate, channels) == (44100, 2) and frames <= 8 * 44100
            stems[name] = audio.load(os.path.join(folder, f"{name}.wav"))[0]
            assert np.abs(stems[name]).max() > 1e-3
        mixture = audio.load(os.path.join(folder, "mixture.wav"))[0]
        np.testing.assert_allclose(sum(stems.values()), mixture, atol=1e-6)


@pytest.mark.slow
def test_soprano_stem_sounds_the_soprano_notes(chorales_root):
    for folder in track_folders(chorales_root):
        with open(os.path.join(folder, "track.json")) as handle:
            record = json.load(handle)
        assert record["programs"]["vocals"] in (52, 53)
        vocals = audio.load(os.path.join(folder, "vocals.wav"))[0].mean(axis=1)
        expected = soprano_from_music21(record)
        played = record["notes"]["vocals"]
        assert [(round(s, 4), k) for s, _, k in played] == [
            (round(s, 4), k) for s, k in expected[: len(played)]
        ]
        hits = checked = 0
        for start, end, key in played:
            a = int((start + 0.25 * (end - start)) * 44100)
            b = int((start + 0.75 * (end - start)) * 44100)
            if b > len(vocals) or b - a < 2048:
                continue
            middle = vocals[a:b]
            assert np.sqrt(np.mean(middle**2)) > 1e-3  # sounding while the note is held
            neighbours = [key_energy(middle, k) for k in range(key - 6, key + 7)]
            hits += int(np.argmax(neighbours) == 6)
            checked += 1
        assert checked >= 8 and hits >= 0.8 * checked


@pytest.mark.slow
def test_reuse_and_seeded_rendering(chorales_root, tmp_path, monkeypatch):
    again = data.bach_chorales(num_tracks=1, seconds=2.0, seed=3, root=tmp_path / "a",
                               progress=False, drums=False)
    other = data.bach_chorales(num_tracks=1, seconds=2.0, seed=3, root=tmp_path / "b",
                               progress=False, drums=False)
    first, second = track_folders(again)[0], track_folders(other)[0]
    assert os.path.basename(first) == os.path.basename(second)
    assert sorted(os.listdir(first)) == ["alto.wav", "bass.wav", "mixture.wav", "tenor.wav",
                                         "track.json", "vocals.wav"]
    np.testing.assert_array_equal(audio.load(os.path.join(first, "mixture.wav"))[0],
                                  audio.load(os.path.join(second, "mixture.wav"))[0])
    monkeypatch.setattr(bach, "render_chorale", lambda *a, **k: pytest.fail("rendered again"))
    reused = data.bach_chorales(num_tracks=2, seconds=8.0, seed=0, root=chorales_root)
    assert reused == chorales_root


@pytest.mark.slow
def test_feeds_the_stems_dataset(chorales_root):
    ds = data.stems_dataset(chorales_root, "train", targets=bach.TWO_STEMS, seconds=1.0,
                            samples_per_track=2, remix=True, gain=(0.25, 1.25), progress=False)
    example = next(iter(ds.as_numpy_iterator()))
    assert set(example) == {"mixture", "vocals", "accompaniment"}
    assert example["vocals"].shape == (44100, 2)
    np.testing.assert_allclose(example["mixture"], example["vocals"] + example["accompaniment"],
                               atol=1e-6)


def test_default_root_lives_in_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    root = bach.default_root(4, 10, 1, True)
    assert root == os.path.join(str(tmp_path), "bach_chorales", "n4-s10-seed1-drums")
