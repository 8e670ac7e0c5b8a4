"""Source augmentations as tf.data map steps, deterministic under a seed.

Each step takes a dataset of unbatched examples ``{"mixture": (samples, 2),
<source>: (samples, 2), ...}``, changes every source on its own, and sets
the mixture to the sum of the changed sources (so the mixture must be the
sum of the sources for the result to mean anything, as with MUSDB18's stems).
Random draws are stateless, keyed on the step's seed and on a per-example
key from ``tf.data.Dataset.random``: one seed gives one sequence of
examples, whatever the parallelism, and each new pass draws new values.

Open-Unmix's training recipe is :func:`random_gain` with ``(0.25, 1.25)``,
:func:`random_channel_swap`, and each source taken from an independently
chosen track (``remix=True`` of :func:`keras_sep.data.stems_dataset`).
"""
import tensorflow as tf

MIXTURE = "mixture"


def _sources(example):
    return sorted(name for name in example if name != MIXTURE)


def _with_keys(dataset, seed):
    keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(dataset, keys)


def sum_sources(example):
    """The example with its mixture replaced by the sum of its sources."""
    example = dict(example)
    example[MIXTURE] = tf.add_n([example[name] for name in _sources(example)])
    return example


def recompute_mixture(dataset):
    """Map step: ``mixture = sum of the sources`` in every example."""
    return dataset.map(sum_sources, num_parallel_calls=tf.data.AUTOTUNE)


def random_gain(dataset, low=0.25, high=1.25, seed=0):
    """Scale each source by its own gain drawn uniformly from ``[low, high)``.

    Args:
        dataset: unbatched examples of ``(samples, channels)`` sources.
        low, high: the gain range (linear; Open-Unmix: 0.25 to 1.25).
        seed: integer seed.

    Returns:
        The dataset with scaled sources and the mixture as their sum.
    """
    if not 0 <= low <= high:
        raise ValueError(f"need 0 <= low <= high, got low={low!r}, high={high!r}")

    def scale_sources(example, key):
        names = _sources(example)
        gains = tf.random.stateless_uniform(
            [len(names)], tf.stack([key, tf.constant(0x6A1, tf.int64)]), low, high
        )
        example = dict(example)
        for i, name in enumerate(names):
            example[name] = example[name] * tf.cast(gains[i], example[name].dtype)
        return sum_sources(example)

    return _with_keys(dataset, seed).map(scale_sources, num_parallel_calls=tf.data.AUTOTUNE)


def random_channel_swap(dataset, probability=0.5, seed=0):
    """Swap the left and right channels of each source with ``probability``.

    Args:
        dataset: unbatched examples of stereo ``(samples, 2)`` sources.
        probability: chance that a given source is swapped.
        seed: integer seed.

    Returns:
        The dataset with swapped sources and the mixture as their sum.
    """
    if not 0 <= probability <= 1:
        raise ValueError(f"probability must be in [0, 1], got {probability!r}")

    def swap_source_channels(example, key):
        names = _sources(example)
        draws = tf.random.stateless_uniform(
            [len(names)], tf.stack([key, tf.constant(0x5A9, tf.int64)])
        )
        example = dict(example)
        for i, name in enumerate(names):
            source = example[name]
            example[name] = tf.where(draws[i] < probability, source[:, ::-1], source)
        return sum_sources(example)

    return _with_keys(dataset, seed).map(
        swap_source_channels, num_parallel_calls=tf.data.AUTOTUNE
    )
