"""keras_sep.inference.kernels and ops.stft.overlap_add against numpy references
and the TensorFlow ops they replace."""
import numpy as np
import pytest
import tensorflow as tf

from keras_sep.inference.kernels import (
    conv2d_by_patches,
    conv2d_by_shifts,
    conv2d_transpose_from_taps,
    conv2d_transpose_polyphase,
    polyphase_kernel,
    transposed_tap_kernel,
)
from keras_sep.ops.stft import overlap_add


def numpy_conv_transpose_same(x, kernel, stride):
    """Scatter form with TensorFlow's "SAME" alignment: input pixel i, tap t
    lands on output s·i + t − p, p = max(k − s, 0) // 2."""
    batch, rows, cols, _ = x.shape
    kh, kw, cout, _ = kernel.shape
    pad_h, pad_w = max(kh - stride, 0) // 2, max(kw - stride, 0) // 2
    out = np.zeros((batch, rows * stride, cols * stride, cout))
    for i in range(rows):
        for j in range(cols):
            for ty in range(kh):
                for tx in range(kw):
                    r, c = stride * i + ty - pad_h, stride * j + tx - pad_w
                    if 0 <= r < rows * stride and 0 <= c < cols * stride:
                        out[:, r, c] += x[:, i, j] @ kernel[ty, tx].T
    return out


def numpy_conv_same(x, kernel, dilation):
    """Cross-correlation, stride 1, "SAME" with dilation: the (k−1)·d padding
    split floor before, rest after."""
    kh, kw, _, cout = kernel.shape
    span_h, span_w = (kh - 1) * dilation, (kw - 1) * dilation
    padded = np.pad(x, [(0, 0), (span_h // 2, span_h - span_h // 2), (span_w // 2, span_w - span_w // 2), (0, 0)])
    out = np.zeros(x.shape[:3] + (cout,))
    for ty in range(kh):
        for tx in range(kw):
            window = padded[:, ty * dilation : ty * dilation + x.shape[1], tx * dilation : tx * dilation + x.shape[2]]
            out += window @ kernel[ty, tx]
    return out


def numpy_conv_strided_same(x, kernel, stride):
    """Cross-correlation with TensorFlow's "SAME" for strides: ceil(n / s)
    outputs, the padding max((out − 1)·s + k − n, 0) split floor before."""
    kh, kw, _, cout = kernel.shape
    rows, cols = -(-x.shape[1] // stride), -(-x.shape[2] // stride)
    pad_h = max((rows - 1) * stride + kh - x.shape[1], 0)
    pad_w = max((cols - 1) * stride + kw - x.shape[2], 0)
    padded = np.pad(x, [(0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)])
    out = np.zeros((x.shape[0], rows, cols, cout))
    for ty in range(kh):
        for tx in range(kw):
            window = padded[:, ty : ty + stride * rows : stride, tx : tx + stride * cols : stride]
            out += window @ kernel[ty, tx]
    return out


def numpy_overlap_add(frames, step):
    count, length = frames.shape[-2:]
    out = np.zeros(frames.shape[:-2] + ((count - 1) * step + length,))
    for f in range(count):
        out[..., f * step : f * step + length] += frames[..., f, :]
    return out


CASES = [  # kernel, stride, rows, cols, cin, cout, batch
    (5, 2, 8, 16, 3, 4, 1),  # Spleeter's layers
    (5, 2, 5, 7, 2, 1, 2),
    (4, 2, 6, 3, 3, 2, 1),
    (3, 2, 4, 4, 1, 3, 2),
    (2, 2, 3, 5, 2, 2, 1),
    (1, 2, 3, 3, 2, 2, 1),
    (6, 2, 3, 4, 2, 3, 1),
    (5, 3, 4, 5, 2, 2, 1),
    (3, 3, 3, 2, 2, 1, 2),
    (1, 3, 2, 2, 1, 1, 1),
    (3, 1, 4, 5, 2, 3, 1),
]


@pytest.mark.parametrize("merged", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_polyphase_transposed_convolution(case, merged):
    k, s, rows, cols, cin, cout, batch = case
    rng = np.random.default_rng(sum(case))
    x = rng.normal(size=(batch, rows, cols, cin)).astype("float32")
    kernel = rng.normal(size=(k, k, cout, cin)).astype("float32")
    got = np.asarray(conv2d_transpose_polyphase(x, kernel, s, merged=merged))
    expected = numpy_conv_transpose_same(x.astype(np.float64), kernel.astype(np.float64), s)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    tf_op = tf.nn.conv2d_transpose(x, kernel, (batch, rows * s, cols * s, cout), s, "SAME")
    np.testing.assert_allclose(got, np.asarray(tf_op), rtol=1e-5, atol=1e-5)
    prepared = polyphase_kernel(kernel, s, merged)
    again = conv2d_transpose_polyphase(x, None, s, prepared=prepared)
    np.testing.assert_array_equal(np.asarray(again), got)


@pytest.mark.parametrize("jit_compile", [False, True])
@pytest.mark.parametrize("case", CASES)
def test_transposed_convolution_from_taps(case, jit_compile):
    k, s, rows, cols, cin, cout, batch = case
    rng = np.random.default_rng(sum(case) + 7)
    x = rng.normal(size=(batch, rows, cols, cin)).astype("float32")
    kernel = rng.normal(size=(k, k, cout, cin)).astype("float32")

    def run(value):
        taps = tf.einsum("bhwc,cn->bhwn", value, transposed_tap_kernel(kernel))
        return conv2d_transpose_from_taps(taps, k, s)

    got = np.asarray(tf.function(run, jit_compile=jit_compile, autograph=False)(x))
    expected = numpy_conv_transpose_same(x.astype(np.float64), kernel.astype(np.float64), s)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_taps_need_equal_strides():
    with pytest.raises(ValueError, match="equal strides"):
        conv2d_transpose_from_taps(tf.zeros((1, 2, 2, 25)), 5, (2, 1))


def test_polyphase_layout_for_spleeter_kernel():
    kernel = tf.zeros((5, 5, 7, 3))
    (merged, pads), = polyphase_kernel(kernel, 2, merged=True)
    assert tuple(merged.shape) == (3, 3, 3, 4 * 7) and pads == ((1, 1), (1, 1))
    phases = polyphase_kernel(kernel, 2, merged=False)
    assert len(phases) == 4
    assert sum(int(k.shape[0]) * int(k.shape[1]) for k, _ in phases) == 25
    assert all(int(k.shape[2]) == 3 and int(k.shape[3]) == 7 for k, _ in phases)


def test_polyphase_needs_equal_strides():
    with pytest.raises(ValueError, match="equal strides"):
        polyphase_kernel(tf.zeros((5, 5, 2, 2)), (2, 1))


@pytest.mark.parametrize("merged", [True, False])
def test_polyphase_gradients_match_the_tf_op(merged):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 4, 6, 3)).astype("float32"))
    kernel = tf.constant(rng.normal(size=(5, 5, 2, 3)).astype("float32"))
    weight = tf.constant(rng.normal(size=(2, 8, 12, 2)).astype("float32"))

    def grads(fn):
        with tf.GradientTape() as tape:
            tape.watch([x, kernel])
            loss = tf.reduce_sum(fn(x, kernel) * weight)
        return tape.gradient(loss, [x, kernel])

    ours = grads(lambda a, k: conv2d_transpose_polyphase(a, k, 2, merged=merged))
    theirs = grads(lambda a, k: tf.nn.conv2d_transpose(a, k, (2, 8, 12, 2), 2, "SAME"))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("case", CASES)
def test_conv_by_patches(case):
    k, s, rows, cols, cin, cout, batch = case
    rng = np.random.default_rng(sum(case) + 11)
    x = rng.normal(size=(batch, rows, cols, cin)).astype("float32")
    kernel = rng.normal(size=(k, k, cin, cout)).astype("float32")
    got = np.asarray(conv2d_by_patches(x, kernel, s))
    expected = numpy_conv_strided_same(x.astype(np.float64), kernel.astype(np.float64), s)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, np.asarray(tf.nn.conv2d(x, kernel, s, "SAME")), rtol=1e-5, atol=1e-5)


def test_conv_by_patches_with_unknown_sizes():
    kernel = np.random.default_rng(0).normal(size=(5, 5, 3, 4)).astype("float32")
    fn = tf.function(lambda v: conv2d_by_patches(v, kernel, 2), input_signature=[tf.TensorSpec((None, None, None, 3))])
    for shape in ((1, 8, 16, 3), (2, 5, 7, 3)):
        x = np.random.default_rng(shape[1]).normal(size=shape).astype("float32")
        np.testing.assert_allclose(np.asarray(fn(x)), numpy_conv_strided_same(x.astype(np.float64), kernel, 2),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("dilation", [1, 2, 3])
@pytest.mark.parametrize("channels", [(1, 2), (3, 1), (2, 3)])
def test_conv_by_shifts(kernel_size, dilation, channels):
    cin, cout = channels
    rng = np.random.default_rng(kernel_size * 10 + dilation)
    x = rng.normal(size=(2, 7, 9, cin)).astype("float32")
    kernel = rng.normal(size=(kernel_size, kernel_size, cin, cout)).astype("float32")
    got = np.asarray(conv2d_by_shifts(x, kernel, dilation))
    np.testing.assert_allclose(got, numpy_conv_same(x.astype(np.float64), kernel.astype(np.float64), dilation),
                               rtol=1e-5, atol=1e-5)
    tf_op = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation)
    np.testing.assert_allclose(got, np.asarray(tf_op), rtol=1e-5, atol=1e-5)


def test_conv_by_shifts_under_xla_matches_the_mask_head_convolution():
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(1, 64, 48, 1)).astype("float32")
    kernel = rng.normal(size=(4, 4, 1, 2)).astype("float32")
    fused = tf.function(lambda a: conv2d_by_shifts(a, kernel, 2), jit_compile=True)
    np.testing.assert_allclose(np.asarray(fused(x)), numpy_conv_same(x.astype(np.float64), kernel, 2),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5, 16), (3, 4, 16), (2, 2, 6, 16), (1, 16), (4, 12)])
@pytest.mark.parametrize("step", [4, 8, 16, 5])
def test_overlap_add(shape, step):
    frames = np.random.default_rng(step).normal(size=shape).astype("float32")
    got = np.asarray(overlap_add(frames, step))
    np.testing.assert_allclose(got, numpy_overlap_add(frames.astype(np.float64), step), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, np.asarray(tf.signal.overlap_and_add(frames, step)), rtol=1e-6, atol=1e-6)


def test_overlap_add_with_dynamic_shapes():
    fn = tf.function(lambda f: overlap_add(f, 4), input_signature=[tf.TensorSpec((None, None, 16))])
    for count in (1, 3, 10):
        frames = np.random.default_rng(count).normal(size=(2, count, 16)).astype("float32")
        np.testing.assert_allclose(np.asarray(fn(frames)), numpy_overlap_add(frames, 4), rtol=1e-5, atol=1e-5)
