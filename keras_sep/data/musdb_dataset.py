"""MUSDB18 through the ``musdb`` package, in keras_sep's example format.

``musdb`` finds the tracks (and the official train/validation split). For
MUSDB18-HQ (``is_wav=True``) the wav files are then read through
:mod:`keras_sep.audio` like any stems folder; for the ``.stem.mp4`` release
the stems are decoded by musdb's own reader (stempeg, which needs ffmpeg),
since libsndfile cannot read MP4 containers.
"""
from keras_sep.data.dataset import _build, chunk_samples
from keras_sep.data.stems import MIXTURE

MUSDB_STEMS = ("vocals", "drums", "bass", "other")


def _stem_loader(source):
    def load_musdb_stem():
        return source.audio, source.rate

    return load_musdb_stem


def musdb_tracks(root, subset="train", split=None, is_wav=False, stems=MUSDB_STEMS):
    """``{track: {stem: source}}`` of a MUSDB18 folder, ``"mixture"`` included.

    Args:
        root: the MUSDB18 (or MUSDB18-HQ) folder.
        subset: ``"train"`` or ``"test"``.
        split: with ``subset="train"``: ``"train"`` or ``"valid"`` for musdb's
            official split, None for all training tracks.
        is_wav: the decoded-wav release (MUSDB18-HQ layout).
        stems: stem names to take.

    Returns:
        dict of sources as :class:`keras_sep.data.stems.StemStore` takes them:
        wav paths, or ``(key, loader)`` pairs for ``.stem.mp4`` files.
    """
    import musdb  # deferred: musdb pulls in stempeg and ffmpeg probing

    database = musdb.DB(root=root, subsets=subset, split=split, is_wav=is_wav)
    if not database.tracks:
        raise ValueError(f"musdb found no {subset!r} tracks in {root!r} (is_wav={is_wav})")
    tracks = {}
    for track in database.tracks:
        sources = {}
        for stem in stems:
            if stem not in track.sources:
                raise ValueError(f"track {track.name!r} has no stem {stem!r}")
            source = track.sources[stem]
            sources[stem] = source.path if is_wav else (
                f"musdb|{track.path}|{stem}", _stem_loader(source)
            )
        if is_wav:
            sources[MIXTURE] = track.path
        tracks[track.name] = sources
    return tracks


def musdb_dataset(root, subset="train", split=None, is_wav=False, stems=MUSDB_STEMS,
                  targets=None, seconds=6.0, samples=None, samples_per_track=64,
                  random_chunks=True, remix=False, gain=None, channel_swap=False,
                  sample_rate=44100, cache="memory", seed=0, num_workers=None, progress=True):
    """Unbatched examples from MUSDB18, as :func:`keras_sep.data.stems_dataset`.

    ``root``, ``subset``, ``split``, ``is_wav`` and ``stems`` are as in
    :func:`musdb_tracks`; every other argument is as in ``stems_dataset``.
    For the ``.stem.mp4`` release the mixture is always the sum of the
    stems; decoding it is slow, so give ``cache`` a folder to keep the
    decoded stems as ``.npy`` for later runs.

    Example:

    >>> train = musdb_dataset("~/musdb18hq", split="train", is_wav=True,
    ...     targets={"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]},
    ...     remix=True, gain=(0.25, 1.25), channel_swap=True, cache="~/musdb_npy")
    """
    if samples is not None:
        seconds = None
    length = chunk_samples(seconds, samples, sample_rate)
    tracks = musdb_tracks(root, subset, split, is_wav, stems)
    return _build(tracks, tuple(stems), targets, length, samples_per_track, random_chunks,
                  remix, gain, channel_swap, sample_rate, cache, seed, num_workers, progress)
