"""Augmentation map steps: ranges, correctness, remixing and determinism."""
import numpy as np
import pytest
import tensorflow as tf

from keras_sep import data
from test_data_stems import STEMS, identify, make_stems_folder, take


def constant_sources(count=64, length=32):
    """Examples whose sources have distinct left/right channels, and their sum."""
    rng = np.random.default_rng(0)
    sources = {
        name: rng.uniform(0.1, 1.0, (count, length, 2)).astype("float32")
        for name in ("bass", "vocals", "drums")
    }
    mixture = sum(sources.values())
    return tf.data.Dataset.from_tensor_slices(dict(sources, mixture=mixture)), sources


def test_random_gain_range_and_mixture():
    ds, sources = constant_sources()
    out = take(data.random_gain(ds, 0.25, 1.25, seed=4))
    gains = []
    for i, example in enumerate(out):
        for name, source in sources.items():
            ratio = example[name] / source[i]
            np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-5)  # one gain per source
            gains.append(ratio[0, 0])
        np.testing.assert_allclose(
            example["mixture"], sum(example[name] for name in sources), rtol=1e-6
        )
    gains = np.array(gains)
    assert gains.min() >= 0.25 and gains.max() < 1.25
    assert gains.min() < 0.4 and gains.max() > 1.1  # spans the range
    with pytest.raises(ValueError, match="low <= high"):
        data.random_gain(ds, 1.0, 0.5)


def test_random_channel_swap_swaps_whole_sources():
    ds, sources = constant_sources()
    out = take(data.random_channel_swap(ds, seed=5))
    swapped = []
    for i, example in enumerate(out):
        for name, source in sources.items():
            flipped = np.array_equal(example[name], source[i][:, ::-1])
            assert flipped or np.array_equal(example[name], source[i])
            swapped.append(flipped)
        np.testing.assert_allclose(
            example["mixture"], sum(example[name] for name in sources), rtol=1e-6
        )
    assert 0.3 < np.mean(swapped) < 0.7


def test_remix_draws_each_stem_from_its_own_track(tmp_path):
    make_stems_folder(tmp_path, num_tracks=4)
    ds = data.stems_dataset(tmp_path, samples=700, samples_per_track=8, remix=True, seed=2,
                            progress=False)
    mixed_tracks = 0
    for example in take(ds):
        found = {name: identify(example[name]) for name in STEMS}
        assert [found[name][1] for name in STEMS] == [0, 1, 2, 3]  # right stem
        for track, _, offset, _ in found.values():
            assert 0 <= offset <= 8000 + 1000 * track - 700  # inside its own track
        mixed_tracks += len({f[0] for f in found.values()}) > 1
        np.testing.assert_allclose(
            example["mixture"], sum(example[name] for name in STEMS), atol=1e-6
        )
    assert mixed_tracks > 24  # of 32 examples


def test_full_recipe_is_deterministic_under_a_seed(tmp_path):
    make_stems_folder(tmp_path, num_tracks=3)
    groups = {"vocals": ["vocals"], "accompaniment": ["drums", "bass", "other"]}

    def batches(seed):
        ds = data.stems_dataset(
            tmp_path, targets=groups, samples=300, samples_per_track=4, remix=True,
            gain=(0.25, 1.25), channel_swap=True, seed=seed, progress=False,
        )
        return take(data.batch(ds, 4, shuffle_buffer=8, seed=seed), 4)

    first, again, other = batches(7), batches(7), batches(8)
    for a, b in zip(first, again):
        for name in a:
            np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_allclose(a["mixture"], a["vocals"] + a["accompaniment"], atol=1e-6)
    # Another seed draws other chunks and gains: the batches differ clearly.
    assert np.abs(first[0]["mixture"] - other[0]["mixture"]).max() > 0.05


def test_each_pass_draws_new_augmentations():
    ds, sources = constant_sources(count=4)
    ds = data.random_gain(ds, seed=1).repeat(2)
    out = take(ds)
    # Example 0 in each pass is the same source times one gain per pass.
    gains = [out[i]["vocals"] / sources["vocals"][0] for i in (0, 4)]
    for gain in gains:
        np.testing.assert_allclose(gain, gain.flat[0], rtol=1e-5)
        assert 0.25 <= gain.flat[0] < 1.25
    assert abs(gains[0].flat[0] - gains[1].flat[0]) > 1e-3
