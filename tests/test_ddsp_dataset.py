"""ddsp_dataset: tones in tmp_path read, resampled, tracked, cached and cut
into unbatched examples; a changed file or a broken cache is rebuilt."""
import numpy as np
import pytest
import soundfile

from keras_sep.data import ddsp_features as ddsp_data
from keras_sep.ops.loudness import loudness_db

RATE, STEP = 16000, 64


def _tone(path, hz, seconds, rate=22050, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    wave = amplitude * np.sin(2 * np.pi * hz * t)
    soundfile.write(path, np.stack([wave, wave], axis=1), rate, subtype="FLOAT")


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "rec" / "sub").mkdir(parents=True)
    _tone(tmp_path / "rec" / "a.wav", 220.0, 2.3)
    _tone(tmp_path / "rec" / "sub" / "b.wav", 330.0, 1.1)
    return tmp_path / "rec"


def _cents(f0, hz):
    return 1200 * np.abs(np.log2(f0 / hz))


def test_examples_from_a_folder(folder, tmp_path):
    ds = ddsp_data.ddsp_dataset(folder, seconds=1.0, cache=tmp_path / "cache")
    examples = list(ds.as_numpy_iterator())
    assert len(examples) == 3  # 2 from the 2.3 s file, 1 from the 1.1 s one
    frames = RATE // STEP
    for example in examples:
        assert example["audio"].shape == (frames * STEP, 1)
        for key in ("f0_hz", "f0_confidence", "loudness_db"):
            assert example[key].shape == (frames, 1) and example[key].dtype == np.float32
    # Examples follow the sorted paths: a.wav's two, then b.wav's.
    inner = slice(10, -10)  # frames away from the files' edges
    assert np.median(_cents(examples[0]["f0_hz"][inner], 220.0)) < 10
    assert np.median(_cents(examples[2]["f0_hz"][inner], 330.0)) < 10
    assert np.median(examples[0]["f0_confidence"]) > 0.8
    # Resampled to 16 kHz, mono: the second example continues the first.
    t = (np.arange(frames * STEP) + frames * STEP) / RATE
    np.testing.assert_allclose(examples[1]["audio"][100:-100, 0], 0.5 * np.sin(2 * np.pi * 220 * t)[100:-100],
                               atol=2e-3)
    # Loudness of the whole file, cut like the audio.
    whole = ddsp_data.audio_features(np.concatenate([examples[0]["audio"], examples[1]["audio"]])[:, 0],
                                     pitch_method="pyin")
    expected = np.asarray(loudness_db(whole["audio"][None, :, None], RATE, STEP))[0, :frames, 0]
    np.testing.assert_allclose(examples[0]["loudness_db"][:-5, 0], expected[:-5], atol=0.05)


def test_model_inputs():
    example = {"audio": np.zeros((128, 1)), "f0_hz": np.ones((2, 1)), "loudness_db": np.ones((2, 1)),
               "f0_confidence": np.ones((2, 1))}
    inputs, target = ddsp_data.to_model_inputs(example)
    assert sorted(inputs) == ["f0_hz", "loudness_db"] and target is example["audio"]
    assert sorted(ddsp_data.to_latent_model_inputs(example)[0]) == ["audio", "f0_hz", "loudness_db"]


def test_cache_is_reused_and_rebuilt_when_stale(folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    path = folder / "a.wav"
    first = ddsp_data.cached_features(path, cache=cache)
    calls = []
    real = ddsp_data.track_pitch
    monkeypatch.setattr(ddsp_data, "track_pitch", lambda *a, **k: calls.append(1) or real(*a, **k))
    again = ddsp_data.cached_features(path, cache=cache)
    assert not calls
    for key in ddsp_data.FEATURE_KEYS:
        np.testing.assert_array_equal(again[key], first[key])

    _tone(path, 440.0, 2.3)  # new content, same name
    changed = ddsp_data.cached_features(path, cache=cache)
    assert calls == [1]
    assert np.median(_cents(changed["f0_hz"][10:-10], 440.0)) < 10

    (cached,) = cache.glob("a-*.npz")
    cached.write_bytes(b"not a zip file")
    rebuilt = ddsp_data.cached_features(path, cache=cache)
    assert calls == [1, 1]
    np.testing.assert_array_equal(rebuilt["f0_hz"], changed["f0_hz"])

    ddsp_data.cached_features(path, frame_step=32, cache=cache)  # other settings: rebuilt
    assert calls == [1, 1, 1]


def test_errors(tmp_path, folder):
    with pytest.raises(ValueError, match="no such folder"):
        ddsp_data.ddsp_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no audio files"):
        ddsp_data.ddsp_dataset(tmp_path / "empty")
    with pytest.raises(ValueError, match="no file .* holds a 5 s example"):
        ddsp_data.ddsp_dataset(folder, seconds=5.0, cache=tmp_path / "cache")
