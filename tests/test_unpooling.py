"""Max pooling with argmax and max unpooling, against numpy references."""
import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_layer

from keras_sep.layers.max_pooling_argmax import MaxPoolingWithArgmax2D
from keras_sep.layers.max_unpooling import MaxUnpooling2D
from keras_sep.ops.pooling import max_pool_with_argmax
from keras_sep.ops.unpooling import max_unpool

# (pool_size, strides): non-overlapping, overlapping, rectangular.
GEOMETRIES = [(2, 2), (3, 2), (3, 3), ((2, 3), (1, 2))]
PADDINGS = ["valid", "same"]


# ---------------------------------------------------------------------------
# numpy references
# ---------------------------------------------------------------------------
def pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def np_geometry(length, pool, stride, padding):
    """Output length and zeros padded before, TensorFlow's rule."""
    if padding == "valid":
        return (length - pool) // stride + 1, 0
    out = -(-length // stride)
    return out, max((out - 1) * stride + pool - length, 0) // 2


def np_pool_with_argmax(x, pool_size, strides, padding):
    """Loop over every window; the first strictly greater element wins."""
    (ph, pw), (sh, sw) = pair(pool_size), pair(strides)
    batch, height, width, channels = x.shape
    out_h, top = np_geometry(height, ph, sh, padding)
    out_w, left = np_geometry(width, pw, sw, padding)
    pooled = np.zeros((batch, out_h, out_w, channels), x.dtype)
    argmax = np.zeros((batch, out_h, out_w, channels), np.int64)
    for b, i, j, c in itertools.product(*map(range, pooled.shape)):
        best = None
        for di, dj in itertools.product(range(ph), range(pw)):
            r, q = i * sh - top + di, j * sw - left + dj
            if 0 <= r < height and 0 <= q < width:
                if best is None or x[b, r, q, c] > pooled[b, i, j, c]:
                    best = (r * width + q) * channels + c
                    pooled[b, i, j, c] = x[b, r, q, c]
        argmax[b, i, j, c] = best
    return pooled, argmax


def np_unpool(values, indices, out_h, out_w):
    """Scatter into zeros; a position written twice keeps the larger value."""
    batch, channels = values.shape[0], values.shape[3]
    out = np.full((batch, out_h * out_w * channels), -np.inf, values.dtype)
    for b in range(batch):
        for v, k in zip(values[b].ravel(), indices[b].ravel()):
            out[b, k] = max(out[b, k], v)
    out[np.isneginf(out)] = 0
    return out.reshape(batch, out_h, out_w, channels)


def np_unpool_grad(values, indices, out_h, out_w, upstream):
    """d sum(unpool * upstream) / d values: equal kept values share equally."""
    unpooled = np_unpool(values, indices, out_h, out_w).reshape(len(values), -1)
    upstream = upstream.reshape(len(values), -1)
    grad = np.zeros_like(values)
    for b in range(len(values)):
        kept = values[b] == unpooled[b][indices[b]]
        counts = np.bincount(indices[b][kept], minlength=unpooled.shape[1])
        grad[b][kept] = upstream[b][indices[b][kept]] / counts[indices[b][kept]]
    return grad


def integer_input(shape, seed=0):
    """Values in {-2, ..., 2}: windows are full of ties."""
    return np.random.default_rng(seed).integers(-2, 3, shape).astype("float32")


# ---------------------------------------------------------------------------
# ops
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("pool_size,strides", GEOMETRIES)
@pytest.mark.parametrize("batch", [1, 3])
def test_pool_with_argmax_matches_numpy(batch, pool_size, strides, padding):
    x = integer_input((batch, 5, 7, 2), seed=batch)
    pooled, argmax = max_pool_with_argmax(x, pool_size, strides, padding)
    ref_pooled, ref_argmax = np_pool_with_argmax(x, pool_size, strides, padding)
    assert argmax.dtype == tf.int64
    np.testing.assert_array_equal(pooled, ref_pooled)
    np.testing.assert_array_equal(argmax, ref_argmax)
    # Same ties as TensorFlow's own kernel, include_batch_in_index=False.
    tf_pooled, tf_argmax = tf.nn.max_pool_with_argmax(
        x, pair(pool_size), pair(strides), padding.upper()
    )
    np.testing.assert_array_equal(argmax, tf_argmax)
    np.testing.assert_array_equal(pooled, tf_pooled)


def test_first_maximum_wins_and_nan_inf_rules():
    x = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], "float32").reshape(1, 2, 4, 1)
    _, argmax = max_pool_with_argmax(x, 2)
    np.testing.assert_array_equal(argmax[0, :, :, 0], [[0, 2]])
    # -inf windows still point inside the input; NaN wins only when first.
    x = np.array([-np.inf, -np.inf, np.nan, 1.0, 1.0, np.nan], "float32")
    pooled, argmax = max_pool_with_argmax(x.reshape(1, 1, 6, 1), (1, 2))
    np.testing.assert_array_equal(argmax[0, 0, :, 0], [0, 2, 4])
    np.testing.assert_array_equal(pooled[0, 0, :, 0], [-np.inf, np.nan, 1.0])


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("pool_size,strides", GEOMETRIES)
def test_unpool_of_pool_keeps_maxima_in_place(pool_size, strides, padding):
    x = integer_input((3, 5, 7, 2), seed=7)
    pooled, argmax = max_pool_with_argmax(x, pool_size, strides, padding)
    # With the geometry given, the window check accepts every true index.
    restored = np.asarray(max_unpool(pooled, argmax, (5, 7), pool_size, strides, padding))
    np.testing.assert_array_equal(
        restored, np_unpool(np.asarray(pooled), np.asarray(argmax), 5, 7)
    )
    chosen = np.zeros(x.shape, bool).reshape(3, -1)
    for b in range(3):
        chosen[b, np.asarray(argmax[b]).ravel()] = True
    chosen = chosen.reshape(x.shape)
    np.testing.assert_array_equal(restored[chosen], x[chosen])
    np.testing.assert_array_equal(restored[~chosen], 0)


def test_unpool_duplicates_keep_largest_and_drop_no_maximum_markers():
    values = np.array([1.0, 4.0, -3.0, 2.0], "float32").reshape(1, 1, 4, 1)
    indices = np.array([5, 5, 0, -1], "int64").reshape(1, 1, 4, 1)
    out = np.asarray(max_unpool(values, indices, (2, 3)))[0, :, :, 0]
    np.testing.assert_array_equal(out, [[-3, 0, 0], [0, 0, 4]])


def test_unpool_refuses_an_index_past_one_example():
    # It would otherwise be dropped or, with a batch offset, land in the
    # next example: the indices belong to a larger tensor.
    values = np.ones((2, 1, 1, 1), "float32")
    with pytest.raises(tf.errors.InvalidArgumentError, match="argmax indices"):
        max_unpool(values, np.full((2, 1, 1, 1), 4, "int64"), (2, 2))


@pytest.mark.parametrize("pool_size,strides", [(2, 2), (3, 2), (3, 1)])
def test_pool_gradient_goes_to_the_argmax(pool_size, strides):
    x = tf.constant(integer_input((2, 5, 7, 3), seed=3))
    upstream = np.random.default_rng(0).normal(size=(2, 5, 7, 3)).astype("float32")
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, argmax = max_pool_with_argmax(x, pool_size, strides, "same")
        loss = tf.reduce_sum(pooled * upstream[:, : pooled.shape[1], : pooled.shape[2]])
    grad = tape.gradient(loss, x).numpy().reshape(2, -1)
    expected = np.zeros_like(grad)
    weights = upstream[:, : pooled.shape[1], : pooled.shape[2]].reshape(2, -1)
    for b in range(2):
        np.add.at(expected[b], np.asarray(argmax[b]).ravel(), weights[b])
    np.testing.assert_allclose(grad, expected, rtol=1e-6)


@pytest.mark.parametrize("from_pool", [True, False])
def test_unpool_gradient_matches_numpy(from_pool):
    rng = np.random.default_rng(1)
    if from_pool:
        # Overlapping windows: many positions are named several times.
        pooled, argmax = max_pool_with_argmax(integer_input((2, 5, 7, 2)), 3, 1)
        values, indices = np.asarray(pooled), np.asarray(argmax)
    else:
        values = rng.integers(0, 3, (2, 3, 3, 2)).astype("float32")
        indices = rng.integers(0, 5 * 7 * 2, values.shape).astype("int64")
    upstream = rng.normal(size=(2, 5, 7, 2)).astype("float32")
    v = tf.constant(values)
    with tf.GradientTape() as tape:
        tape.watch(v)
        loss = tf.reduce_sum(max_unpool(v, indices, (5, 7)) * upstream)
    expected = np_unpool_grad(values, indices, 5, 7, upstream)
    np.testing.assert_allclose(tape.gradient(loss, v), expected, rtol=1e-6)


def test_pool_unpool_in_tf_function_with_unknown_batch():
    spec = tf.TensorSpec((None, 5, 7, 2), tf.float32)

    @tf.function(input_signature=[spec])
    def round_trip(x):
        pooled, argmax = max_pool_with_argmax(x, 3, 2, "same")
        return max_unpool(pooled, argmax, tf.shape(x)[1:3])

    for batch in (1, 3):
        x = integer_input((batch, 5, 7, 2), seed=batch)
        pooled, argmax = np_pool_with_argmax(x, 3, 2, "same")
        np.testing.assert_array_equal(round_trip(x), np_unpool(pooled, argmax, 5, 7))
    assert round_trip.experimental_get_tracing_count() == 1


# ---------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------
def test_pooling_layer_basic_checks(tmp_path):
    x = integer_input((3, 5, 7, 2))
    (pooled, argmax), (mp_pooled, mp_argmax) = check_layer(
        MaxPoolingWithArgmax2D,
        {"pool_size": 3, "strides": 2, "padding": "same"},
        x,
        [(3, 3, 4, 2), (3, 3, 4, 2)],
        tmp_path=tmp_path,
    )
    assert argmax.dtype == "int64" and mp_argmax.dtype == "int64"
    assert mp_pooled.dtype == "float16"
    np.testing.assert_array_equal(mp_argmax, argmax)
    symbolic = MaxPoolingWithArgmax2D()(keras.Input((None, None, 2)))
    assert symbolic[1].dtype == "int64" and symbolic[0].dtype == "float32"


@pytest.mark.parametrize("with_reference", [False, True])
def test_unpooling_layer_basic_checks(tmp_path, with_reference):
    x = integer_input((3, 5, 7, 2))
    pooled, argmax = np_pool_with_argmax(x, 2, 2, "valid")
    inputs = [pooled, argmax] + ([x] if with_reference else [])
    kwargs = {"pool_size": 2}
    if not with_reference:
        kwargs["output_size"] = (5, 7)
    (out,), (mp_out,) = check_layer(
        MaxUnpooling2D, kwargs, inputs, (3, 5, 7, 2), tmp_path=tmp_path
    )
    np.testing.assert_array_equal(out, np_unpool(pooled, argmax, 5, 7))
    assert mp_out.dtype == "float16"


@pytest.mark.parametrize("padding,size", [("valid", (5, 7)), ("same", (4, 6))])
def test_unpooling_default_size(padding, size):
    layer = MaxUnpooling2D(pool_size=3, strides=2, padding=padding)
    x = integer_input((1, *size, 1))
    values, indices = np_pool_with_argmax(x, 3, 2, padding)
    assert values.shape == (1, 2, 3, 1)
    out = np.asarray(layer([values, indices]))
    np.testing.assert_array_equal(out, np_unpool(values, indices, *size))
    assert layer.compute_output_shape([(None, 2, 3, 1)] * 2) == (None, *size, 1)
    unknown_height = layer.compute_output_shape([(None, None, 3, 1)] * 2)
    assert unknown_height == (None, None, size[1], 1)


def test_encoder_decoder_with_dynamic_spatial_size(tmp_path):
    """Odd sizes survive pooling when the decoder takes a reference tensor."""
    inputs = keras.Input((None, None, 2))
    features = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    pooled, argmax = MaxPoolingWithArgmax2D(2)(features)
    outputs = MaxUnpooling2D(2)([pooled, argmax, features])
    model = keras.Model(inputs, outputs)
    path = tmp_path / "segnet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    for shape in [(1, 5, 7, 2), (3, 4, 6, 2)]:
        x = np.random.default_rng(0).normal(size=shape).astype("float32")
        out = np.asarray(loaded(x))
        assert out.shape == shape[:3] + (4,)
        np.testing.assert_allclose(out, np.asarray(model(x)), atol=1e-6)


def test_gradient_through_layers():
    x = tf.constant(integer_input((2, 5, 7, 2)))
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, argmax = MaxPoolingWithArgmax2D(3, 2)(x)
        restored = MaxUnpooling2D(3, 2)([pooled, argmax, x])
        loss = tf.reduce_sum(restored * x)
    grad = tape.gradient(loss, x).numpy()
    # d/dx of sum over kept maxima of x * x: 2 x at the maxima, 0 elsewhere.
    expected = np.where(np.asarray(restored) != 0, 2 * np.asarray(x), 0)
    np.testing.assert_allclose(grad, expected)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"pool_size": 0}, "pool_size"),
        ({"strides": (1, 2, 3)}, "strides"),
        ({"padding": "full"}, "'full'"),
    ],
)
def test_bad_arguments(kwargs, match):
    for cls in (MaxPoolingWithArgmax2D, MaxUnpooling2D):
        with pytest.raises(ValueError, match=match):
            cls(**kwargs)
    with pytest.raises(ValueError, match="output_size"):
        MaxUnpooling2D(output_size=(5,))
    with pytest.raises(ValueError, match="values, indices"):
        MaxUnpooling2D()(np.zeros((1, 2, 2, 1), "float32"))


# ---------------------------------------------------------------------------
# sizes that are not the default: odd inputs, mismatched indices
# ---------------------------------------------------------------------------
ODD_AND_EVEN = [(7, 9), (6, 8)]


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("pool_size,strides", [(2, 2), (3, 2)])
@pytest.mark.parametrize("size", ODD_AND_EVEN)
def test_unpooling_odd_and_even_sizes_match_numpy(size, pool_size, strides, padding):
    x = integer_input((2, *size, 3), seed=11)
    values, indices = np_pool_with_argmax(x, pool_size, strides, padding)
    expected = np_unpool(values, indices, *size)
    layer = MaxUnpooling2D(pool_size, strides, padding)
    np.testing.assert_array_equal(layer([values, indices, x]), expected)
    sized = MaxUnpooling2D(pool_size, strides, padding, output_size=size)
    np.testing.assert_array_equal(sized([values, indices]), expected)


@pytest.mark.parametrize("padding", PADDINGS)
def test_indices_of_an_odd_size_unpooled_to_the_default_are_an_error(padding):
    """7 x 9 pools to the size that 6 x 8 ("valid") or 8 x 10 ("same") pools
    to; its indices must not be read against that default, nor against any
    other wrong size."""
    x = integer_input((2, 7, 9, 3), seed=12)
    values, indices = np_pool_with_argmax(x, 2, 2, padding)
    default = MaxUnpooling2D(2, padding=padding)
    default_size = (6, 8) if padding == "valid" else (8, 10)
    assert default.compute_output_shape([values.shape] * 2) == (2, *default_size, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"argmax indices"):
        default([values, indices])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"argmax indices"):
        MaxUnpooling2D(2, padding=padding, output_size=(7, 10))([values, indices])
    # A reference of the wrong size is refused the same way, also in a graph.
    wrong = tf.function(lambda v, i, r: default([v, i, r]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"assumed \(height, width\)"):
        wrong(values, indices, np.zeros((2, 6, 8, 1), "float32"))
    # Indices of another pooling geometry (3 x 3 windows) are refused too.
    values3, indices3 = np_pool_with_argmax(x, 3, 2, padding)
    with pytest.raises(tf.errors.InvalidArgumentError, match="pool_size=\\(2, 2\\)"):
        MaxUnpooling2D(2, padding=padding)([values3, indices3, x])


def test_mismatched_indices_fail_inside_a_keras_model():
    inputs = [keras.Input((None, None, 2)), keras.Input((None, None, 2), dtype="int64")]
    model = keras.Model(inputs, MaxUnpooling2D(2)(inputs))
    x = integer_input((1, 7, 9, 2), seed=13)
    values, indices = np_pool_with_argmax(x, 2, 2, "valid")
    with pytest.raises(tf.errors.InvalidArgumentError, match="argmax indices"):
        model.predict([values, indices], verbose=0)
    even = integer_input((1, 6, 8, 2), seed=13)
    values, indices = np_pool_with_argmax(even, 2, 2, "valid")
    out = model.predict([values, indices], verbose=0)
    np.testing.assert_array_equal(out, np_unpool(values, indices, 6, 8))


def test_encoder_decoder_unpools_odd_sizes_and_others_refuse_them():
    from keras_sep.models.encoder_decoder import encoder_decoder

    keras.utils.set_random_seed(4)
    x = np.random.default_rng(5).normal(size=(2, 7, 9, 1)).astype("float32")
    static = encoder_decoder((7, 9, 1), 3, filters=(4, 8), upsampling="unpool")
    dynamic = encoder_decoder((None, None, 1), 3, filters=(4, 8), upsampling="unpool")
    dynamic.set_weights(static.get_weights())
    np.testing.assert_allclose(dynamic(x), static(x), atol=1e-6)
    assert static(x).shape == (2, 7, 9, 3)
    # The last unpooling puts the 3 x 4 values back into 7 x 9, by numpy.
    pool, unpool = static.get_layer("pool_0"), static.get_layer(f"unpool_{1}")
    probe = keras.Model(static.input, [pool.input, unpool.input[0], pool.output[1], unpool.output])
    pre_pool, values, argmax, unpooled = [np.asarray(t) for t in probe(x)]
    assert pre_pool.shape == unpooled.shape == (2, 7, 9, 4)
    np.testing.assert_array_equal(unpooled, np_unpool(values, argmax, 7, 9))
    for mode in ("transpose", "bilinear"):
        with pytest.raises(ValueError, match="multiples of 4 with upsampling"):
            encoder_decoder((7, 9, 1), 3, filters=(4, 8), upsampling=mode)
    with pytest.raises(ValueError, match="at least 4"):
        encoder_decoder((3, 9, 1), 3, filters=(4, 8), upsampling="unpool")
