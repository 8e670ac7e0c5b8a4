"""Waveform examples to UNetSeparator training pairs, and one fit step on them."""
import numpy as np
import pytest
import tensorflow as tf

from keras_sep import data
from keras_sep.models.unet_separator import UNetSeparator
from keras_sep.models.waveform_separator import WaveformSeparator
from test_data_stems import make_stems_folder


def tiny_separator():
    net = UNetSeparator(filters=(4, 8), bins=32, frames=32)
    return WaveformSeparator(net, frame_length=64, frame_step=16, overlap_frames=4)


def numpy_magnitude(waveform, frame_length, frame_step, frames, bins):
    """Reference: periodic Hann frames, rfft, no padding; (frames, bins, channels)."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame_length) / frame_length)
    starts = np.arange(frames) * frame_step
    framed = np.stack([waveform[s : s + frame_length] for s in starts])  # (T, L, C)
    spectrum = np.fft.rfft(framed * window[None, :, None], axis=1)
    return np.abs(spectrum[:, :bins, :])


def test_settings_follow_the_waveform_separator():
    settings = data.spectrogram_settings(tiny_separator())
    assert settings == {"frame_length": 64, "frame_step": 16, "bins": 32, "frames": 32,
                        "instruments": ("vocals", "accompaniment"), "samples": 31 * 16 + 64}
    with pytest.raises(ValueError, match="exceeds"):
        data.spectrogram_settings(tiny_separator(), bins=40)


def test_pairs_match_a_numpy_stft():
    rng = np.random.default_rng(0)
    waves = {name: rng.normal(size=(2, 560, 2)).astype("float32")
             for name in ("mixture", "vocals", "accompaniment")}
    ds = tf.data.Dataset.from_tensor_slices(waves)
    pairs = list(data.to_spectrogram_pairs(ds, tiny_separator()).as_numpy_iterator())
    mixture, targets = pairs[1]
    assert mixture.shape == (32, 32, 2) and mixture.dtype == np.float32
    assert set(targets) == {"vocals", "accompaniment"}
    for name, value in [("mixture", mixture)] + list(targets.items()):
        expected = numpy_magnitude(waves[name][1], 64, 16, 32, 32)
        np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-4)
    batched = data.to_spectrogram_pairs(ds.batch(2), tiny_separator())
    assert batched.element_spec[0].shape.as_list() == [None, 32, 32, 2]
    with pytest.raises(ValueError, match="lack"):
        data.to_spectrogram_pairs(ds.map(lambda e: {"mixture": e["mixture"]}), tiny_separator())


def test_pairs_are_what_the_separator_feeds_its_network():
    """Training and separation share one STFT: a chunk's training input is
    exactly the magnitude the separator hands the network for it."""
    separator = tiny_separator()
    segment = np.random.default_rng(1).normal(size=(separator.segment_length, 2)).astype("float32")
    seen = []

    def network(magnitude):
        seen.append(np.asarray(magnitude[0]))
        zeros = tf.zeros_like(magnitude)
        return {name: zeros for name in separator.instruments}

    separator.separate_segments(segment[None], network=network)
    ds = tf.data.Dataset.from_tensors({name: segment for name in ("mixture", "vocals", "accompaniment")})
    mixture, _ = next(data.to_spectrogram_pairs(ds, separator).as_numpy_iterator())
    np.testing.assert_allclose(mixture, seen[0], rtol=1e-6, atol=1e-6)


def test_one_fit_step_on_stems_folder(tmp_path):
    make_stems_folder(tmp_path, num_tracks=2)
    separator = tiny_separator()
    settings = data.spectrogram_settings(separator)
    ds = data.stems_dataset(
        tmp_path, targets={"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]},
        samples=settings["samples"], samples_per_track=2, remix=True, gain=(0.25, 1.25),
        channel_swap=True, progress=False,
    )
    train = data.to_spectrogram_pairs(data.batch(ds, 2, shuffle_buffer=4), separator)
    net = separator.spectrogram_model
    net.compile(optimizer="adam", loss={name: "mae" for name in net.instruments})
    history = net.fit(train, steps_per_epoch=1, epochs=1, shuffle=False, verbose=0)
    assert np.isfinite(history.history["loss"][0])
