"""Upsampling2D: nearest, bilinear and bed of nails against seed tables and numpy."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_layer

from keras_sep.layers.upsampling import Upsampling2D
from keras_sep.ops.upsampling import bed_of_nails_upsample

MODES = ["nearest", "bilinear", "bed_of_nails"]


def as_image(rows):
    """A 2-D table as a (1, height, width, 1) float32 batch."""
    return np.asarray(rows, "float32")[None, :, :, None]


def upsample(x, size, mode):
    return np.asarray(Upsampling2D(size, mode=mode)(x))


def np_bilinear_axis(x, factor, axis):
    """Half-pixel centres: output o samples (o + 0.5) / factor - 0.5, clamped."""
    n = x.shape[axis]
    source = np.clip((np.arange(n * factor) + 0.5) / factor - 0.5, 0, n - 1)
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, n - 1)
    weight = (source - low).reshape([-1 if a == axis else 1 for a in range(x.ndim)])
    return np.take(x, low, axis) * (1 - weight) + np.take(x, high, axis) * weight


def np_bilinear(x, size):
    rows, cols = (size, size) if isinstance(size, int) else size
    return np_bilinear_axis(np_bilinear_axis(x, rows, 1), cols, 2)


def np_bed_of_nails(x, size):
    rows, cols = (size, size) if isinstance(size, int) else size
    b, h, w, c = x.shape
    out = np.zeros((b, h * rows, w * cols, c), x.dtype)
    out[:, ::rows, ::cols] = x
    return out


# ---------------------------------------------------------------------------
# seed tables
# ---------------------------------------------------------------------------
def test_nearest_seed_table():
    out = upsample(as_image([[1, 2], [3, 4]]), 2, "nearest")[0, :, :, 0]
    np.testing.assert_array_equal(
        out, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    )


def test_bilinear_seed_table():
    out = upsample(as_image([[10, 20], [30, 40]]), 2, "bilinear")[0, :, :, 0]
    np.testing.assert_allclose(
        out,
        [
            [10, 12.5, 17.5, 20],
            [15, 17.5, 22.5, 25],
            [25, 27.5, 32.5, 35],
            [30, 32.5, 37.5, 40],
        ],
    )


def test_bed_of_nails_seed_table():
    out = upsample(as_image([[1, 2], [3, 4]]), 2, "bed_of_nails")[0, :, :, 0]
    np.testing.assert_array_equal(
        out, [[1, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]
    )


# ---------------------------------------------------------------------------
# random inputs against numpy
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("size", [2, 3, (3, 2)])
@pytest.mark.parametrize("batch", [1, 3])
def test_random_inputs_match_numpy(batch, size):
    x = np.random.default_rng(batch).normal(size=(batch, 5, 7, 2)).astype("float32")
    np.testing.assert_allclose(
        upsample(x, size, "bilinear"), np_bilinear(x, size), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(
        upsample(x, size, "bed_of_nails"), np_bed_of_nails(x, size)
    )
    rows, cols = (size, size) if isinstance(size, int) else size
    nearest = np.repeat(np.repeat(x, rows, axis=1), cols, axis=2)
    np.testing.assert_array_equal(upsample(x, size, "nearest"), nearest)


def test_bed_of_nails_in_tf_function_with_unknown_shape():
    spec = tf.TensorSpec((None, None, None, 2), tf.float32)
    fn = tf.function(lambda x: bed_of_nails_upsample(x, (2, 3)), input_signature=[spec])
    for shape in [(1, 5, 7, 2), (3, 2, 3, 2)]:
        x = np.random.default_rng(0).normal(size=shape).astype("float32")
        np.testing.assert_array_equal(fn(x), np_bed_of_nails(x, (2, 3)))


def test_bed_of_nails_gradient_is_subsampling():
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 3, 5, 2)), tf.float32)
    upstream = np.random.default_rng(1).normal(size=(2, 6, 15, 2)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(Upsampling2D((2, 3), mode="bed_of_nails")(x) * upstream)
    np.testing.assert_allclose(tape.gradient(loss, x), upstream[:, ::2, ::3])


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_gradient_matches_adjoint(mode):
    """<up(x), y> == <x, up^T(y)>: the gradient is the layer's adjoint."""
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(2, 3, 4, 1)), tf.float32)
    y = rng.normal(size=(2, 6, 8, 1)).astype("float32")
    layer = Upsampling2D(2, mode=mode)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x) * y)
    grad = tape.gradient(loss, x).numpy()
    # The map is linear: build its matrix column by column from unit inputs.
    eye = np.eye(x.shape[1] * x.shape[2], dtype="float32").reshape(-1, 3, 4, 1)
    matrix = np.asarray(layer(eye)).reshape(len(eye), -1)
    expected = np.einsum("km,bm->bk", matrix, y.reshape(2, -1)).reshape(x.shape)
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# layer checks
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_layer_basic_checks(tmp_path, mode):
    x = np.random.default_rng(0).normal(size=(3, 5, 7, 2)).astype("float32")
    (out,), (mp_out,) = check_layer(
        Upsampling2D,
        {"size": (2, 3), "mode": mode},
        x,
        (3, 10, 21, 2),
        tmp_path=tmp_path,
    )
    assert mp_out.dtype == "float16"
    np.testing.assert_allclose(np.asarray(mp_out, "float32"), out, rtol=1e-2, atol=1e-2)
    layer = Upsampling2D(2, mode=mode)
    assert layer.compute_output_shape((None, None, 7, 2)) == (None, None, 14, 2)
    assert layer(keras.Input((None, None, 2))).shape == (None, None, None, 2)


def test_bad_mode_quotes_value():
    with pytest.raises(ValueError, match="'bicubic'"):
        Upsampling2D(2, mode="bicubic")
    with pytest.raises(ValueError, match="size"):
        Upsampling2D(0)
