"""conv_transpose_reference: worked examples, a scatter reference, Keras layers."""
import keras
import numpy as np
import pytest

from keras_sep.layers.conv_transpose_block import Conv2DTransposeBlock
from keras_sep.ops.conv_transpose import conv_transpose_reference

X = np.array([[1, 2], [3, 4]], "float64")
K = np.array([[-1, 1], [-2, 2]], "float64")

# The worked examples, by hand with out[s*i + a, s*j + b] += x[i, j] * K[a, b]
# and then `padding` cropped from every side.
WORKED = {
    (1, 0): [[-1, -1, 2], [-5, -3, 8], [-6, -2, 8]],
    (2, 0): [[-1, 1, -2, 2], [-2, 2, -4, 4], [-3, 3, -4, 4], [-6, 6, -8, 8]],
    (2, 1): [[2, -4], [3, -4]],
}


def scatter_reference(x, kernel, stride, padding):
    """Second, independent reference: scatter each input pixel, then crop.

    ``x (H, W, Cin)``, ``kernel (kh, kw, Cout, Cin)``, pairs of ints.
    """
    (sh, sw), (ph, pw) = stride, padding
    height, width, _ = x.shape
    kh, kw, cout, _ = kernel.shape
    full = np.zeros(((height - 1) * sh + kh, (width - 1) * sw + kw, cout))
    for i in range(height):
        for j in range(width):
            # (kh, kw, Cout, Cin) @ (Cin,) -> (kh, kw, Cout)
            full[sh * i : sh * i + kh, sw * j : sw * j + kw] += kernel @ x[i, j]
    return full[ph : full.shape[0] - ph, pw : full.shape[1] - pw]


@pytest.mark.parametrize("stride,padding", sorted(WORKED))
def test_worked_examples(stride, padding):
    expected = np.array(WORKED[(stride, padding)], "float64")
    out = conv_transpose_reference(X, K, stride, padding)
    np.testing.assert_array_equal(out, expected)
    scattered = scatter_reference(
        X[:, :, None], K[:, :, None, None], (stride, stride), (padding, padding)
    )
    np.testing.assert_array_equal(scattered[:, :, 0], expected)


@pytest.mark.parametrize(
    "stride,padding,kernel_size",
    [(1, 0, (3, 3)), (2, 1, (4, 3)), ((3, 1), (2, 0), (5, 2)), ((1, 2), (0, 1), (2, 4))],
)
def test_multichannel_matches_scatter(stride, padding, kernel_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3, 3))
    kernel = rng.normal(size=kernel_size + (2, 3))
    out = conv_transpose_reference(x, kernel, stride, padding)
    pair = lambda v: (v, v) if np.isscalar(v) else v  # noqa: E731
    expected = scatter_reference(x, kernel, pair(stride), pair(padding))
    np.testing.assert_allclose(out, expected, atol=1e-12)
    # A single channel pair is the 2-D case.
    single = conv_transpose_reference(x[:, :, 0], kernel[:, :, 1, 0], stride, padding)
    one = scatter_reference(x[:, :, :1], kernel[:, :, 1:2, :1], pair(stride), pair(padding))
    np.testing.assert_allclose(single, one[:, :, 0], atol=1e-12)


def _keras_transpose(x, kernel, stride, padding):
    kh, kw, cout, _ = kernel.shape
    layer = keras.layers.Conv2DTranspose(
        cout, (kh, kw), strides=stride, padding=padding, use_bias=False
    )
    layer.build((None,) + x.shape)
    layer.kernel.assign(kernel.astype("float32"))
    return np.asarray(layer(x[None].astype("float32")))[0]


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_matches_keras_valid(stride, k):
    rng = np.random.default_rng(stride * 10 + k)
    x = rng.normal(size=(3, 4, 3))
    kernel = rng.normal(size=(k, k, 2, 3))
    expected = conv_transpose_reference(x, kernel, stride, 0)
    out = _keras_transpose(x, kernel, stride, "valid")
    height, width = expected.shape[:2]
    np.testing.assert_allclose(out[:height, :width], expected, atol=1e-4)
    # Keras makes "valid" outputs at least n * stride long: when k < stride
    # the extra stride - k rows and columns at the end are zeros.
    assert out.shape[:2] == (max(height, 3 * stride), max(width, 4 * stride))
    assert np.all(out[height:] == 0) and np.all(out[:, width:] == 0)


@pytest.mark.parametrize(
    "stride,k",
    # k < stride needs negative cropping (Keras pads), which the reference has not.
    [(s, k) for s in (1, 2, 3) for k in (2, 3, 4, 5) if k >= s],
)
def test_matches_keras_same(stride, k):
    """Keras "same" gives n * s pixels: a total crop of k - s per axis.

    When k - s is even that is the reference's padding (k - s) / 2. When it
    is odd Keras crops (k - s) // 2 at the start and one more at the end,
    i.e. the reference with padding (k - s) // 2 less its last row and
    column. k < s needs negative cropping, which the reference has not.
    """
    rng = np.random.default_rng(stride * 10 + k)
    x = rng.normal(size=(3, 4, 3))
    kernel = rng.normal(size=(k, k, 2, 3))
    out = _keras_transpose(x, kernel, stride, "same")
    assert out.shape[:2] == (3 * stride, 4 * stride)
    expected = conv_transpose_reference(x, kernel, stride, (k - stride) // 2)
    if (k - stride) % 2:
        expected = expected[:-1, :-1]
    np.testing.assert_allclose(out, expected, atol=1e-4)


@pytest.mark.parametrize("stride,k", [(1, 3), (2, 2), (2, 5), (3, 4)])
def test_matches_conv_transpose_block(stride, k):
    rng = np.random.default_rng(k)
    x = rng.normal(size=(3, 4, 3))
    kernel = rng.normal(size=(k, k, 2, 3))
    bias = rng.normal(size=(2,))
    block = Conv2DTransposeBlock(
        2, kernel_size=k, strides=stride, padding="valid",
        batch_norm=False, activation="linear",
    )
    block.build((None,) + x.shape)
    block.conv.kernel.assign(kernel.astype("float32"))
    block.conv.bias.assign(bias.astype("float32"))
    out = np.asarray(block(x[None].astype("float32"), training=False))[0]
    expected = conv_transpose_reference(x, kernel, stride, 0) + bias
    np.testing.assert_allclose(out[: expected.shape[0], : expected.shape[1]], expected, atol=1e-4)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="input channels"):
        conv_transpose_reference(np.zeros((2, 2, 3)), np.zeros((2, 2, 1, 2)))
    with pytest.raises(ValueError, match="padding"):
        conv_transpose_reference(X, K, 1, 2)
    with pytest.raises(ValueError, match="stride"):
        conv_transpose_reference(X, K, 0, 0)
    with pytest.raises(ValueError, match="shapes"):
        conv_transpose_reference(X, np.zeros((2, 2, 1, 1)))
