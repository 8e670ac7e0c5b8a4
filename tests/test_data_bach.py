"""The built-in rendered Bach chorales: layout, sums, soprano notes, reuse."""
import json
import os

import numpy as np
import pytest

from keras_sep import audio
from keras_sep import data
from keras_sep.data import bach

pytest.importorskip("music21")
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


def _pitch_offset(wave, key, rate=44100):
    """Which semitone around ``key`` holds most of the energy (0 = ``key``)."""
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    freqs = np.fft.rfftfreq(len(wave), 1 / rate)
    f0 = 440.0 * 2 ** ((key - 69) / 12)
    bands = [spectrum[(freqs > f0 * 2 ** ((k - 0.5) / 12)) & (freqs < f0 * 2 ** ((k + 0.5) / 12))].sum()
             for k in range(-6, 7)]
    return int(np.argmax(bands)) - 6


def test_renders_without_any_synthesiser_package(monkeypatch):
    """A plain ``pip install`` has no tinysoundfont (its pyaudio does not
    build): the renderer needs only NumPy and pretty_midi's SoundFont."""
    import sys

    from keras_sep.data.soundfont import SoundFontRenderer

    monkeypatch.setitem(sys.modules, "tinysoundfont", None)  # any import of it fails
    wave = SoundFontRenderer().render([(0.1, 0.6, 60, 100)], program=52, samples=44100)
    assert wave.shape == (44100, 2) and wave.dtype == np.float32
    assert np.abs(wave[:4000]).max() == 0.0  # nothing before the note starts
    assert np.abs(wave[int(0.2 * 44100) : int(0.5 * 44100)]).max() > 0.05


@pytest.mark.parametrize("program, key", [(52, 60), (52, 74), (0, 57), (40, 69), (32, 40), (71, 65)])
def test_notes_sound_at_their_pitch(program, key):
    from keras_sep.data.soundfont import SoundFontRenderer

    wave = SoundFontRenderer().render([(0.0, 1.5, key, 100)], program=program, samples=88200)
    # 0.3 s to 1.3 s: well past the attack and, for these samples, past the loop start.
    assert _pitch_offset(wave[13230:57330].mean(axis=1), key) == 0


def test_loops_hold_and_release_fades():
    """A looped sample sounds as long as the key is held (far longer than the
    sample itself), then the release fades it to silence."""
    from keras_sep.data import sf2
    from keras_sep.data.soundfont import SoundFontRenderer, _load, default_soundfont

    font = _load(default_soundfont())
    sample, generators = font.zones(0, 52, 60, 100)[0]
    begin, end = font.headers[sample][:2]
    assert generators[sf2.SAMPLE_MODES] & 1 and (end - begin) / font.headers[sample][4] < 2.0
    rate = 44100
    wave = SoundFontRenderer().render([(0.0, 4.0, 60, 100)], program=52, samples=7 * rate)
    rms = lambda a, b: np.sqrt(np.mean(wave[int(a * rate) : int(b * rate)] ** 2))  # noqa: E731
    assert rms(3.5, 4.0) > 0.3 * rms(1.0, 1.5)  # still sustaining after 3.5 s
    assert rms(5.5, 7.0) < 1e-4  # released at 4 s, gone 1.5 s later


def test_velocity_and_pan():
    from keras_sep.data.soundfont import SoundFontRenderer

    renderer = SoundFontRenderer()
    loud = renderer.render([(0.0, 0.5, 60, 120)], program=0, samples=22050)
    soft = renderer.render([(0.0, 0.5, 60, 60)], program=0, samples=22050)
    # The default velocity curve: amplitude (velocity / 127)².
    np.testing.assert_allclose(np.abs(soft).max() / np.abs(loud).max(), (60 / 120) ** 2, rtol=1e-3)
    left = renderer.render([(0.0, 0.5, 60, 100)], program=0, samples=22050, pan=0)
    right = renderer.render([(0.0, 0.5, 60, 100)], program=0, samples=22050, pan=127)
    energy = lambda w, c: np.sum(w[:, c].astype(np.float64) ** 2)  # noqa: E731
    assert energy(left, 0) > 100 * energy(left, 1)
    assert energy(right, 1) > 100 * energy(right, 0)
    np.testing.assert_allclose(energy(left, 0), energy(right, 1), rtol=1e-2)


def test_soundfont_parser_rejects_other_files():
    from keras_sep.data.sf2 import SoundFont

    with pytest.raises(ValueError, match="not a SoundFont 2 file"):
        SoundFont(b"RIFF\x00\x00\x00\x00WAVEfmt ")
