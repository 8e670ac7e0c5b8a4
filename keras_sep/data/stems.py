"""Finding stems folders and keeping their decoded audio at hand.

A stems folder follows MUSDB18's layout::

    root/{train,test}/<track>/{mixture,vocals,drums,bass,other}.wav

with any set of stem names. Audio is decoded once (through
:mod:`keras_sep.audio`), resampled to one rate, made stereo, and kept either
in memory or as ``.npy`` files in a cache folder that later runs open
memory-mapped, so a large dataset never has to fit in memory.
"""
import concurrent.futures
import hashlib
import os
import tempfile
import threading

import numpy as np

from keras_sep import audio

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
MIXTURE = "mixture"

# Decoded arrays shared by every store in this process that uses the
# in-memory cache, so rebuilding a dataset (new seed, new chunk length) does
# not decode the same files again.
_MEMORY = {}
_MEMORY_LOCK = threading.Lock()


def find_tracks(root, subset="train"):
    """``{track: {stem: path}}`` of the track folders in ``root/subset``.

    Args:
        root: dataset root.
        subset: sub-folder such as ``"train"`` or ``"test"``; ``None`` reads
            track folders directly under ``root``.

    Returns:
        dict sorted by track name; each value maps a file's stem name (its
        name without extension, ``"mixture"`` included) to its path.
    """
    folder = os.path.join(os.fspath(root), subset) if subset else os.fspath(root)
    if not os.path.isdir(folder):
        raise ValueError(f"no such dataset folder: {folder!r}")
    tracks = {}
    for track in sorted(os.listdir(folder)):
        track_dir = os.path.join(folder, track)
        if not os.path.isdir(track_dir):
            continue
        stems = {}
        for name in sorted(os.listdir(track_dir)):
            stem, ext = os.path.splitext(name)
            if ext.lower() in AUDIO_EXTENSIONS and not stem.startswith("."):
                stems[stem] = os.path.join(track_dir, name)
        if stems:
            tracks[track] = stems
    if not tracks:
        raise ValueError(f"no track folders with audio files in {folder!r}")
    return tracks


def common_stems(tracks, stems=None):
    """The stem names (``"mixture"`` excluded) to use from ``find_tracks``'s result.

    Args:
        tracks: ``{track: {stem: source}}``.
        stems: names asked for; ``None`` takes those every track has.

    Returns:
        tuple of names; raises ValueError naming a track that lacks one.
    """
    if stems is None:
        shared = set.intersection(*(set(track) for track in tracks.values()))
        stems = sorted(shared - {MIXTURE})
        if not stems:
            raise ValueError("the tracks share no stem besides the mixture")
        return tuple(stems)
    stems = tuple(stems)
    if MIXTURE in stems or len(set(stems)) != len(stems) or not stems:
        raise ValueError(f"stems must be distinct names other than 'mixture', got {stems!r}")
    for track, files in tracks.items():
        missing = [stem for stem in stems if stem not in files]
        if missing:
            raise ValueError(f"track {track!r} has no stem {missing} (it has {sorted(files)})")
    return stems


def to_stereo(waveform, name="<array>"):
    """``(samples, 1 or 2)`` float32 to ``(samples, 2)``: mono is duplicated."""
    waveform = audio.check_waveform(waveform, name)
    if waveform.shape[1] == 1:
        return np.repeat(waveform, 2, axis=1)
    if waveform.shape[1] != 2:
        raise audio.AudioError(f"{name}: expected mono or stereo, got {waveform.shape[1]} channels")
    return waveform


def _source_key(source, sample_rate):
    """A cache key for a stem source: a path, or a ``(key, loader)`` pair."""
    if isinstance(source, tuple):
        text = f"{source[0]}|{sample_rate}"
    else:
        path = os.path.abspath(os.fspath(source))
        stat = os.stat(path)
        text = f"{path}|{stat.st_mtime_ns}|{stat.st_size}|{sample_rate}"
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def _decode(source, sample_rate):
    if isinstance(source, tuple):
        waveform, rate = source[1]()
        name = str(source[0])
        waveform = audio.resample(audio.check_waveform(waveform, name), rate, sample_rate)
    else:
        name = os.fspath(source)
        waveform, _ = audio.load(source, sample_rate=sample_rate)
    return to_stereo(waveform, name)


def _save_npy(path, array):
    # Written under a temporary name and renamed, so a crash never leaves a
    # truncated cache file that a later run would trust.
    fd, temp = tempfile.mkstemp(prefix=".partial-", suffix=".npy", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


class StemStore:
    """Decoded stems of some tracks, stereo float32 at one sample rate.

    Args:
        tracks: ``{track: {stem: source}}``; a source is an audio file path
            or a ``(cache_key, loader)`` pair whose ``loader()`` returns
            ``(waveform (samples, channels), sample_rate)``.
        stems: stem names to keep, in this order (``"mixture"`` may be one).
        sample_rate: rate of every array, in Hz (resampled with soxr).
        cache: ``"memory"`` keeps the arrays in memory (shared across stores
            in this process); a folder path keeps them there as ``.npy``
            files, reused by later runs and opened memory-mapped.
        num_workers: threads decoding tracks in parallel.
        progress: show a tqdm bar while decoding.

    Attributes:
        names: track names, in order.
        lengths: int64 ``(tracks,)``, samples of each track (shortest stem).
    """

    def __init__(self, tracks, stems, sample_rate=44100, cache="memory", num_workers=None,
                 progress=True):
        if not tracks:
            raise ValueError("tracks is empty")
        if cache != "memory" and not isinstance(cache, (str, os.PathLike)):
            raise ValueError(f"cache must be 'memory' or a folder path, got {cache!r}")
        self.names = tuple(tracks)
        self.stems = tuple(stems)
        self.sample_rate = int(sample_rate)
        self.cache = cache if cache == "memory" else os.fspath(cache)
        if self.cache != "memory":
            os.makedirs(self.cache, exist_ok=True)
        num_workers = num_workers or min(4, os.cpu_count() or 1)
        jobs = [tracks[name] for name in self.names]
        with concurrent.futures.ThreadPoolExecutor(num_workers) as pool:
            results = pool.map(self._load_track, jobs)
            if progress:
                import tqdm

                results = tqdm.tqdm(results, total=len(jobs), desc="decoding stems", unit="track")
            self.arrays = list(results)
        self.lengths = np.array(
            [min(len(array) for array in track.values()) for track in self.arrays], np.int64
        )

    def _load_track(self, sources):
        return {stem: self._load_stem(sources[stem]) for stem in self.stems}

    def _load_stem(self, source):
        key = _source_key(source, self.sample_rate)
        if self.cache == "memory":
            with _MEMORY_LOCK:
                cached = _MEMORY.get(key)
            if cached is None:
                cached = _decode(source, self.sample_rate)
                with _MEMORY_LOCK:
                    _MEMORY[key] = cached
            return cached
        path = os.path.join(self.cache, f"{key}.npy")
        if not os.path.exists(path):
            _save_npy(path, _decode(source, self.sample_rate))
        return np.load(path, mmap_mode="r")

    def chunk(self, track, stem, offset, length):
        """``(length, 2)`` float32 of one stem from ``offset``, zero-padded past the end."""
        array = self.arrays[int(track)][stem]
        offset = int(offset)
        stop = min(offset + int(length), int(self.lengths[int(track)]))
        out = np.zeros((int(length), 2), np.float32)
        if stop > offset:
            out[: stop - offset] = array[offset:stop]
        return out
