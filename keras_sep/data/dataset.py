"""tf.data pipelines of fixed-length stem chunks, and the one batching step.

Every builder returns unbatched examples, a dict of float32 ``(samples, 2)``
waveforms: ``{"mixture": ..., "<target>": ...}``. :func:`batch` then adds
shuffling, repetition, batching and prefetching. Randomness (chunk offsets,
track choices, augmentations) comes from stateless random ops keyed on a
seed and on a per-example key drawn from ``tf.data.Dataset.random``, so a
pipeline built twice with one seed yields identical examples whatever the
thread scheduling, while every pass over it (every epoch) draws new ones.
"""
import numpy as np
import tensorflow as tf

from keras_sep.data import augment
from keras_sep.data.stems import MIXTURE, StemStore, common_stems, find_tracks

AUTOTUNE = tf.data.AUTOTUNE


def chunk_samples(seconds=None, samples=None, sample_rate=44100):
    """Chunk length in samples from exactly one of ``seconds`` or ``samples``."""
    if (seconds is None) == (samples is None):
        raise ValueError(f"give exactly one of seconds or samples, got {seconds!r}, {samples!r}")
    length = int(samples) if samples is not None else int(round(float(seconds) * sample_rate))
    if length <= 0:
        raise ValueError(f"the chunk length must be positive, got {length} samples")
    return length


def store_dataset(store, length, samples_per_track=64, random_chunks=True, remix=False,
                  seed=0, num_parallel_calls=AUTOTUNE):
    """Unbatched chunks ``{stem: (length, 2)}`` drawn from a :class:`StemStore`.

    Args:
        store: the decoded tracks.
        length: chunk length in samples.
        samples_per_track: random chunks per track in one pass.
        random_chunks: ``False`` gives every track's consecutive whole
            chunks in order (a track shorter than one chunk gives one,
            zero-padded), for validation.
        remix: draw each stem from its own random track at its own random
            offset (Open-Unmix's "random track mix"); the mixture is then the
            sum of the stems.
        seed: seed of the offsets and track choices.
        num_parallel_calls: parallelism of the chunk reads.

    Returns:
        ``tf.data.Dataset`` of dicts with the store's stems; ``"mixture"``
        holds the sum of the stems unless the store holds a mixture and
        ``remix`` is off.
    """
    stems = tuple(stem for stem in store.stems if stem != MIXTURE)
    read = stems if remix or MIXTURE not in store.stems else stems + (MIXTURE,)
    lengths = tf.constant(store.lengths, tf.int64)
    num_tracks = len(store.names)

    if random_chunks:
        indices = tf.data.Dataset.range(num_tracks * int(samples_per_track))
        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

        def draw_chunk_positions(index, key):
            seed_pair = tf.stack([key, index])
            if remix:
                tracks = tf.random.stateless_uniform(
                    [len(read)], seed_pair, 0, num_tracks, dtype=tf.int64
                )
            else:
                tracks = tf.fill([len(read)], index // int(samples_per_track))
            room = tf.maximum(tf.gather(lengths, tracks) - length, 0) + 1
            unit = tf.random.stateless_uniform(
                [len(read)], tf.random.experimental.stateless_fold_in(seed_pair, 1)
            )
            offsets = tf.cast(unit * tf.cast(room, tf.float32), tf.int64)
            if not remix:
                offsets = tf.fill([len(read)], offsets[0])
            return tracks, tf.minimum(offsets, room - 1)

        positions = tf.data.Dataset.zip(indices, keys).map(draw_chunk_positions)
    else:
        tracks, offsets = [], []
        for track, total in enumerate(store.lengths):
            for offset in range(0, max(int(total) - length, 0) + 1, length):
                tracks.append([track] * len(read))
                offsets.append([offset] * len(read))
        positions = tf.data.Dataset.from_tensor_slices(
            (np.array(tracks, np.int64), np.array(offsets, np.int64))
        )

    def read_chunks(tracks, offsets):
        return np.stack(
            [store.chunk(t, stem, o, length) for t, stem, o in zip(tracks, read, offsets)]
        )

    def load_chunks(tracks, offsets):
        chunks = tf.numpy_function(read_chunks, [tracks, offsets], tf.float32, stateful=False)
        chunks.set_shape([len(read), length, 2])
        example = {stem: chunks[i] for i, stem in enumerate(read)}
        if MIXTURE not in example:
            example[MIXTURE] = tf.add_n([example[stem] for stem in stems])
        return example

    return positions.map(load_chunks, num_parallel_calls=num_parallel_calls)


def group_targets(dataset, targets):
    """Sum stems into targets: ``{"mixture", target: sum of its stems}``.

    Args:
        dataset: examples holding ``"mixture"`` and every stem named.
        targets: ``{target: [stem, ...]}``, e.g. ``{"vocals": ["vocals"],
            "accompaniment": ["drums", "bass", "other"]}``. Stems in no group
            stay in the mixture only.
    """
    targets = {name: tuple(group) for name, group in dict(targets).items()}
    available = set(dataset.element_spec) - {MIXTURE}
    for name, group in targets.items():
        if name == MIXTURE or not group or not set(group) <= available:
            raise ValueError(
                f"target {name!r} must group stems among {sorted(available)}, got {list(group)}"
            )

    def sum_target_stems(example):
        grouped = {MIXTURE: example[MIXTURE]}
        for name, group in targets.items():
            grouped[name] = tf.add_n([example[stem] for stem in group])
        return grouped

    return dataset.map(sum_target_stems, num_parallel_calls=AUTOTUNE)


def stems_dataset(root, subset="train", stems=None, targets=None, seconds=6.0, samples=None,
                  samples_per_track=64, random_chunks=True, remix=False, gain=None,
                  channel_swap=False, sample_rate=44100, cache="memory", seed=0,
                  num_workers=None, progress=True):
    """Unbatched training examples from a MUSDB18-layout stems folder.

    Args:
        root: folder holding ``subset/<track>/<stem>.wav`` (any stem names;
            ``mixture.wav`` optional).
        subset: ``"train"``, ``"test"``, or None for tracks directly in root.
        stems: stem names to use; default the ones every track has.
        targets: ``{target: [stem, ...]}`` groups; default each stem alone.
        seconds, samples: chunk length, one of the two (samples wins if given).
        samples_per_track: random chunks per track in one pass.
        random_chunks: ``False``: consecutive chunks in order (validation).
        remix: each stem from an independently chosen random track and
            offset (Open-Unmix's augmentation).
        gain: ``(low, high)`` random gain per stem, e.g. ``(0.25, 1.25)``.
        channel_swap: swap left and right of each stem with probability 1/2.
        sample_rate: rate of the examples (files are resampled to it).
        cache: ``"memory"`` or a folder for ``.npy`` copies of the decoded audio.
        seed: seed of every random choice.
        num_workers: threads decoding the tracks.
        progress: show a progress bar while decoding.

    Returns:
        ``tf.data.Dataset`` of ``{"mixture": (samples, 2), target: (samples, 2)}``
        float32. With any augmentation the mixture is the sum of the
        augmented stems; otherwise it is ``mixture.wav`` when present.

    Example:

    >>> ds = stems_dataset("musdb18hq", targets={"vocals": ["vocals"],
    ...     "accompaniment": ["drums", "bass", "other"]}, seconds=6.0,
    ...     remix=True, gain=(0.25, 1.25), channel_swap=True)
    >>> train = batch(ds, 16, shuffle_buffer=1000)
    """
    if samples is not None:
        seconds = None
    length = chunk_samples(seconds, samples, sample_rate)
    tracks = find_tracks(root, subset)
    return _build(tracks, stems, targets, length, samples_per_track, random_chunks, remix, gain,
                  channel_swap, sample_rate, cache, seed, num_workers, progress)


def _build(tracks, stems, targets, length, samples_per_track, random_chunks, remix, gain,
           channel_swap, sample_rate, cache, seed, num_workers, progress):
    """The pipeline shared by :func:`stems_dataset` and the MUSDB builder."""
    stems = common_stems(tracks, stems)
    has_mixture = all(MIXTURE in files for files in tracks.values())
    augmented = remix or gain is not None or channel_swap
    keep = stems + ((MIXTURE,) if has_mixture and not augmented else ())
    store = StemStore(tracks, keep, sample_rate, cache, num_workers, progress)
    dataset = store_dataset(store, length, samples_per_track, random_chunks, remix, seed)
    if gain is not None:
        dataset = augment.random_gain(dataset, *gain, seed=seed + 1)
    if channel_swap:
        dataset = augment.random_channel_swap(dataset, seed=seed + 2)
    return group_targets(dataset, targets or {stem: [stem] for stem in stems})


def batch(dataset, batch_size, shuffle_buffer=0, repeat=True, seed=None, drop_remainder=True):
    """Shuffle, repeat, batch and prefetch unbatched examples.

    Args:
        dataset: unbatched examples.
        batch_size: examples per batch.
        shuffle_buffer: shuffle buffer size; 0 keeps the order.
        repeat: repeat forever (give ``steps_per_epoch`` to ``fit``).
        seed: shuffle seed; reshuffled each pass, the same for a given seed.
        drop_remainder: drop a last smaller batch (static batch shapes).
    """
    if shuffle_buffer:
        dataset = dataset.shuffle(int(shuffle_buffer), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    return dataset.prefetch(AUTOTUNE)
