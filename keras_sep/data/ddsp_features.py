"""DDSP training data from any folder of recordings of one instrument.

Each file is read once (:mod:`keras_sep.audio`), mixed to mono, resampled
to the model's rate, and its controls computed: f0 and its confidence
(:func:`keras_sep.data.track_pitch`) and A-weighted loudness
(:func:`keras_sep.ops.loudness.loudness_db`), all on the synthesisers'
frame grid. The result is cached as one ``.npz`` per file, valid while the
file's content and the settings are the same (a changed file or setting
rebuilds it). Files are then cut into fixed-length examples.
"""
import hashlib
import json
import logging
import os

import numpy as np

from keras_sep import audio as audio_io
from keras_sep._cache import cache_dir
from keras_sep.data.pitch import track_pitch

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".m4a", ".opus")
FEATURE_KEYS = ("audio", "f0_hz", "f0_confidence", "loudness_db")
_VERSION = 1  # bump when the features computed here change


def find_recordings(folder):
    """Audio files under ``folder`` (recursively), sorted."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ValueError(f"no such folder of recordings: {folder!r}")
    found = []
    for root, _, names in os.walk(folder):
        found += [os.path.join(root, n) for n in names
                  if os.path.splitext(n)[1].lower() in AUDIO_EXTENSIONS and not n.startswith(".")]
    if not found:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in {folder!r}")
    return sorted(found)


def audio_features(waveform, sample_rate=16000, frame_step=64, pitch_method="auto"):
    """The DDSP controls of mono audio at the model's rate.

    Args:
        waveform: ``(samples,)`` or ``(samples, channels)`` (averaged).
        sample_rate: its rate in Hz.
        frame_step: samples per control frame.
        pitch_method: :func:`track_pitch`'s ``method``.

    Returns:
        ``{"audio": (frames * frame_step,), "f0_hz", "f0_confidence",
        "loudness_db": (frames,)}``, float32 numpy arrays, ``frames =
        samples // frame_step``.
    """
    import tensorflow as tf

    from keras_sep.ops.loudness import loudness_db

    waveform = np.asarray(waveform, np.float32)
    if waveform.ndim == 2:
        waveform = waveform.mean(axis=1)
    if waveform.ndim != 1:
        raise ValueError(f"waveform must be (samples,) or (samples, channels), got shape {waveform.shape}")
    frames = len(waveform) // frame_step
    waveform = waveform[: frames * frame_step]
    f0, confidence = track_pitch(waveform, sample_rate, frame_step, method=pitch_method)
    loudness = loudness_db(tf.constant(waveform[None, :, None]), sample_rate, frame_step)
    return {
        "audio": waveform,
        "f0_hz": f0.astype(np.float32),
        "f0_confidence": confidence.astype(np.float32),
        "loudness_db": np.asarray(loudness[0, :, 0], np.float32),
    }


def _content_key(path, settings):
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_features(path, sample_rate=16000, frame_step=64, pitch_method="auto", cache=None):
    """:func:`audio_features` of the file at ``path``, computed once.

    The cache file (in ``cache``, default ``<keras_sep cache>/ddsp_features``)
    is named after the file's path and holds a key of the file's content and
    the settings; when either differs it is rebuilt.
    """
    path = os.path.abspath(os.fspath(path))
    settings = {"sample_rate": int(sample_rate), "frame_step": int(frame_step),
                "pitch_method": pitch_method, "version": _VERSION}
    key = _content_key(path, settings)
    cache = os.fspath(cache) if cache is not None else os.path.join(cache_dir(), "ddsp_features")
    os.makedirs(cache, exist_ok=True)
    name = os.path.splitext(os.path.basename(path))[0]
    target = os.path.join(cache, f"{name}-{hashlib.sha1(path.encode()).hexdigest()[:16]}.npz")
    if os.path.exists(target):
        try:
            with np.load(target) as stored:
                if str(stored["key"]) == key:
                    return {k: stored[k] for k in FEATURE_KEYS}
            logger.info("%s changed since its features were cached: computing them again", path)
        except (OSError, ValueError, KeyError) as error:  # a truncated or foreign file
            logger.warning("unreadable feature cache %s (%s): computing it again", target, error)
    waveform, _ = audio_io.load(path, sample_rate=sample_rate)
    features = audio_features(waveform, sample_rate, frame_step, pitch_method)
    partial = f"{target}.{os.getpid()}.partial.npz"
    np.savez(partial, key=np.array(key), **features)
    os.replace(partial, target)  # readers see a whole file or none
    return features


def cut_examples(features, example_frames, hop_frames, frame_step):
    """Stack windows of ``example_frames`` frames every ``hop_frames``: a dict
    of ``(examples, frames or samples)`` arrays (none for a short file)."""
    frames = len(features["f0_hz"])
    starts = list(range(0, frames - example_frames + 1, hop_frames))
    out = {}
    for key in FEATURE_KEYS:
        step = frame_step if key == "audio" else 1
        windows = [features[key][s * step : (s + example_frames) * step] for s in starts]
        out[key] = np.stack(windows) if windows else np.zeros((0, example_frames * step), np.float32)
    return out


def add_channel_axis(example):
    """Give every feature a trailing channel axis: channels-last ``(samples,
    1)`` audio and ``(frames, 1)`` controls."""
    return {key: value[:, None] for key, value in example.items()}


def to_model_inputs(example):
    """An example as ``(inputs, target)`` for ``DDSPAutoencoder.fit``: f0
    and loudness in, the audio as the target."""
    return {"f0_hz": example["f0_hz"], "loudness_db": example["loudness_db"]}, example["audio"]


def to_latent_model_inputs(example):
    """As :func:`to_model_inputs`, with the audio among the inputs too, for
    a ``DDSPAutoencoder`` with a latent (``z_units``)."""
    inputs, target = to_model_inputs(example)
    return dict(inputs, audio=example["audio"]), target


def ddsp_dataset(folder, sample_rate=16000, frame_step=64, seconds=4.0, hop_seconds=None,
                 pitch_method="auto", cache=None, files=None):
    """Unbatched DDSP examples from a folder of recordings of one instrument.

    Every file is cut into examples of ``seconds`` (whole frames), one every
    ``hop_seconds`` (default ``seconds``: no overlap); a remainder shorter
    than an example is left out, and so is a file shorter than one.

    Args:
        folder: searched recursively for audio files.
        sample_rate: the model's rate; files are resampled to it.
        frame_step: samples per control frame.
        seconds: length of an example.
        hop_seconds: distance between the starts of examples.
        pitch_method: :func:`track_pitch`'s ``method``.
        cache: feature cache folder (see :func:`cached_features`).
        files: use these paths instead of searching ``folder`` (e.g. to hold
            some out).

    Returns:
        ``tf.data.Dataset`` of ``{"audio": (samples, 1), "f0_hz": (frames,
        1), "f0_confidence": (frames, 1), "loudness_db": (frames, 1)}``
        float32, ``samples = frames * frame_step``; map
        :func:`to_model_inputs` (:func:`to_latent_model_inputs`) and :func:`keras_sep.data.batch` for training.

    Example:

    >>> ds = ddsp_dataset("violin_recordings/")
    >>> train = batch(ds.map(to_model_inputs), 16, shuffle_buffer=256)
    """
    import tensorflow as tf

    example_frames = int(round(seconds * sample_rate)) // frame_step
    hop_frames = example_frames if hop_seconds is None else int(round(hop_seconds * sample_rate)) // frame_step
    if example_frames < 1 or hop_frames < 1:
        raise ValueError(f"seconds and hop_seconds must cover one frame at least, got {seconds!r}, {hop_seconds!r}")
    paths = list(files) if files is not None else find_recordings(folder)
    parts = []
    for path in paths:
        features = cached_features(path, sample_rate, frame_step, pitch_method, cache)
        examples = cut_examples(features, example_frames, hop_frames, frame_step)
        if not len(examples["audio"]):
            logger.warning("%s is shorter than one %g s example: left out", path, seconds)
        parts.append(examples)
    stacked = {key: np.concatenate([p[key] for p in parts]).astype(np.float32) for key in FEATURE_KEYS}
    if not len(stacked["audio"]):
        raise ValueError(f"no file in {folder!r} holds a {seconds:g} s example")
    logger.info("%d examples of %g s from %d files", len(stacked["audio"]), seconds, len(paths))
    return tf.data.Dataset.from_tensor_slices(stacked).map(add_channel_axis)
