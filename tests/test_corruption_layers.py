"""Corruption layers of denoising autoencoders: identity at inference, numeric
checks of what they do in training mode, and the shared layer checks."""
import keras
import numpy as np
import pytest
from layer_checks import check_layer

from keras_sep.layers import (
    AdditiveGaussianNoise,
    CrossOcclusion,
    MaskingNoise,
    SaltAndPepperNoise,
)

LAYERS = [
    (AdditiveGaussianNoise, dict(stddev=0.3, clip_min=0.0, clip_max=1.0, seed=1)),
    (MaskingNoise, dict(rate=0.3, seed=2)),
    (SaltAndPepperNoise, dict(rate=0.2, salt=1.0, pepper=-1.0, seed=3)),
    (CrossOcclusion, dict(thickness=2, length=3, value=0.5, seed=4)),
]


def images(shape=(3, 12, 10, 2), seed=0):
    return np.random.default_rng(seed).uniform(0.1, 0.9, shape).astype("float32")


@pytest.mark.parametrize("cls,kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_basic_checks(cls, kwargs, tmp_path):
    x = images()
    outputs, _ = check_layer(cls, kwargs, x, x.shape, tmp_path=tmp_path)
    np.testing.assert_array_equal(np.asarray(outputs[0]), x)


@pytest.mark.parametrize("cls,kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_identity_at_inference_and_corrupting_in_training(cls, kwargs):
    x = images()
    layer = cls(**kwargs)
    for out in (layer(x), layer(x, training=False), layer(x, training=None)):
        np.testing.assert_array_equal(np.asarray(out), x)
    model = keras.Sequential([keras.Input(x.shape[1:]), cls(**kwargs)])
    np.testing.assert_array_equal(model.predict(x, verbose=0), x)
    assert not np.array_equal(np.asarray(layer(x, training=True)), x)
    assert not np.array_equal(np.asarray(layer.corrupt(x)), x)


@pytest.mark.parametrize("cls,kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_same_seed_same_corruption_and_fresh_draws(cls, kwargs):
    x = images()
    a, b = cls(**kwargs), cls(**kwargs)
    first = np.asarray(a(x, training=True))
    np.testing.assert_array_equal(first, np.asarray(b(x, training=True)))
    assert not np.array_equal(first, np.asarray(a(x, training=True)))


@pytest.mark.parametrize("cls,kwargs", LAYERS, ids=lambda v: getattr(v, "__name__", ""))
def test_mixed_precision_training_mode(cls, kwargs):
    keras.config.set_dtype_policy("mixed_float16")
    layer = cls(**kwargs)
    out = layer(images(), training=True)
    assert out.dtype == "float16" and np.all(np.isfinite(np.asarray(out)))


def test_corruption_is_active_during_fit_only():
    """With a frozen identity model, the training loss sees corrupted inputs."""
    x = images((64, 16))
    model = keras.Sequential(
        [keras.Input((16,)), MaskingNoise(0.5, seed=0),
         keras.layers.Dense(16, kernel_initializer="identity", bias_initializer="zeros")]
    )
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "mse")
    train_loss = model.fit(x, x, epochs=1, batch_size=64, verbose=0).history["loss"][0]
    clean_loss = model.evaluate(x, x, verbose=0)
    assert clean_loss < 1e-10
    expected = 0.5 * np.mean(x**2)  # half the entries become 0
    np.testing.assert_allclose(train_loss, expected, rtol=0.15)


def test_gaussian_statistics_and_clipping():
    x = np.zeros((200, 500), "float32")
    noisy = np.asarray(AdditiveGaussianNoise(0.2, seed=0)(x, training=True), "float64")
    assert abs(noisy.mean()) < 4 * 0.2 / np.sqrt(noisy.size)
    np.testing.assert_allclose(noisy.std(), 0.2, rtol=0.01)
    clipped = AdditiveGaussianNoise(1.0, clip_min=0.0, clip_max=1.0, seed=0)
    out = np.asarray(clipped(x + 0.5, training=True))
    assert out.min() == 0.0 and out.max() == 1.0
    # P(0.5 + z < 0) = Phi(-0.5) = 0.3085 for z ~ N(0, 1).
    np.testing.assert_allclose((out == 0).mean(), 0.3085, atol=0.01)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5, 1.0])
def test_masking_fraction_and_no_rescaling(rate):
    x = images((100, 32, 32, 1))
    out = np.asarray(MaskingNoise(rate, seed=5)(x, training=True))
    masked = out == 0
    np.testing.assert_allclose(masked.mean(), rate, atol=0.01)
    # Kept values are exactly the inputs (Dropout would scale by 1/(1-rate)).
    np.testing.assert_array_equal(out[~masked], x[~masked])


def test_salt_and_pepper_fractions_and_values():
    x = images((100, 64, 16))
    out = np.asarray(SaltAndPepperNoise(0.3, salt=2.0, pepper=-1.0, seed=6)(x, training=True))
    salt, pepper = out == 2.0, out == -1.0
    np.testing.assert_allclose(salt.mean(), 0.15, atol=0.01)
    np.testing.assert_allclose(pepper.mean(), 0.15, atol=0.01)
    kept = ~(salt | pepper)
    np.testing.assert_array_equal(out[kept], x[kept])


def cross_reference(height, width, top, left, thickness, length):
    """Numpy mask of a cross whose bands start at row ``top``, column ``left``."""
    mask = np.zeros((height, width), bool)
    reach = max(height, width) if length is None else length
    rows = slice(top, top + thickness)
    cols = slice(left, left + thickness)
    mask[rows, max(left - reach, 0) : left + thickness + reach] = True
    mask[max(top - reach, 0) : top + thickness + reach, cols] = True
    return mask


@pytest.mark.parametrize("thickness,length", [(1, None), (2, None), (3, 2), (1, 0)])
def test_cross_matches_numpy_reference(thickness, length):
    height, width, channels = 11, 9, 3
    layer = CrossOcclusion(thickness, length=length, value=1.0, seed=7)
    out = np.asarray(layer(np.zeros((64, height, width, channels), "float32"), training=True))
    assert set(np.unique(out)) <= {0.0, 1.0}
    # Every channel of an occluded pixel is set.
    mask = out[..., 0] == 1
    for c in range(1, channels):
        np.testing.assert_array_equal(out[..., c] == 1, mask)
    tops, lefts = [], []
    for m in mask:
        # The horizontal band: the rows with the most occluded pixels.
        row_counts, col_counts = m.sum(axis=1), m.sum(axis=0)
        top = int(np.flatnonzero(row_counts == row_counts.max())[0])
        left = int(np.flatnonzero(col_counts == col_counts.max())[0])
        np.testing.assert_array_equal(
            m, cross_reference(height, width, top, left, thickness, length)
        )
        tops.append(top)
        lefts.append(left)
        if length is None:
            assert m.sum() == thickness * (height + width - thickness)
    # Positions are spread over every possible start.
    assert set(tops) == set(range(height - thickness + 1))
    assert set(lefts) == set(range(width - thickness + 1))


def test_cross_on_flat_vectors_and_grey_images():
    flat = CrossOcclusion(2, image_shape=(8, 6, 2), value=-1.0, seed=8)
    out = np.asarray(flat(np.zeros((5, 96), "float32"), training=True))
    assert out.shape == (5, 96)
    pixels = out.reshape(5, 8, 6, 2)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])
    np.testing.assert_array_equal((pixels[..., 0] == -1).sum(axis=(1, 2)), 2 * (8 + 6 - 2))
    grey = CrossOcclusion(1, seed=8)
    out = np.asarray(grey(np.zeros((5, 8, 6), "float32"), training=True))
    np.testing.assert_array_equal((out == 1).sum(axis=(1, 2)), 8 + 6 - 1)
    digits = CrossOcclusion(1, image_shape=(8, 8), seed=0)
    assert np.asarray(digits(np.zeros((2, 64), "float32"), training=True)).sum() == 2 * 15


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="stddev"):
        AdditiveGaussianNoise(-0.1)
    with pytest.raises(ValueError, match="clip_min"):
        AdditiveGaussianNoise(0.1, clip_min=1.0, clip_max=0.0)
    with pytest.raises(ValueError, match="rate"):
        MaskingNoise(1.5)
    with pytest.raises(ValueError, match="rate"):
        SaltAndPepperNoise(-0.1)
    with pytest.raises(ValueError, match="thickness"):
        CrossOcclusion(0)
    with pytest.raises(ValueError, match="image_shape"):
        CrossOcclusion(1, image_shape=(8,))
    with pytest.raises(ValueError, match="image_shape"):
        CrossOcclusion(1).corrupt(np.zeros((2, 64), "float32"))
