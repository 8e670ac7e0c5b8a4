"""Conv2DBlock and Conv2DTransposeBlock: basic checks and numpy references."""
import math

import keras
import numpy as np
import pytest
from layer_checks import check_layer

from keras_sep.layers.conv_block import Conv2DBlock
from keras_sep.layers.conv_transpose_block import Conv2DTransposeBlock

X = np.random.default_rng(0).normal(size=(2, 8, 6, 3)).astype("float32")

# (kwargs, output shape, trainable weights, non-trainable weights)
CONV_CASES = [
    (dict(filters=4), (2, 4, 3, 4), 4, 2),
    (dict(filters=4, batch_norm=False, activation="relu"), (2, 4, 3, 4), 2, 0),
    (dict(filters=4, activation="elu", order="act_bn"), (2, 4, 3, 4), 4, 2),
    (dict(filters=4, activation="sigmoid", dropout=0.5), (2, 4, 3, 4), 4, 2),
    (dict(filters=4, activation=None, use_bias=False), (2, 4, 3, 4), 3, 2),
    (dict(filters=2, kernel_size=3, strides=1, dilation_rate=2), (2, 8, 6, 2), 4, 2),
    (dict(filters=4, kernel_size=(3, 5), padding="valid"), (2, 3, 1, 4), 4, 2),
]
TRANSPOSE_CASES = [
    (dict(filters=4), (2, 16, 12, 4), 4, 2),
    (dict(filters=4, batch_norm=False, activation="linear"), (2, 16, 12, 4), 2, 0),
    (dict(filters=4, activation="leaky_relu", order="bn_act", dropout=0.5), (2, 16, 12, 4), 4, 2),
    # No dilated case: TensorFlow's CPU Conv2DBackpropInput rejects dilation > 1.
    (dict(filters=2, activation="elu", kernel_size=3, strides=1), (2, 8, 6, 2), 4, 2),
    (dict(filters=2, activation="sigmoid", kernel_size=4, padding="valid"), (2, 18, 14, 2), 4, 2),
]


@pytest.mark.parametrize("kwargs,shape,trainable,non_trainable", CONV_CASES)
def test_conv_block_basics(kwargs, shape, trainable, non_trainable, tmp_path):
    check_layer(Conv2DBlock, kwargs, X, shape, trainable, non_trainable, tmp_path=tmp_path)


@pytest.mark.parametrize("kwargs,shape,trainable,non_trainable", TRANSPOSE_CASES)
def test_conv_transpose_block_basics(kwargs, shape, trainable, non_trainable, tmp_path):
    check_layer(
        Conv2DTransposeBlock, kwargs, X, shape, trainable, non_trainable, tmp_path=tmp_path
    )


@pytest.mark.parametrize(
    "cls,shape", [(Conv2DBlock, (2, 4, 3, 4)), (Conv2DTransposeBlock, (2, 16, 12, 4))]
)
def test_return_conv_output(cls, shape, tmp_path):
    kwargs = dict(filters=4, return_conv_output=True)
    check_layer(cls, kwargs, X, [shape, shape], 4, 2, tmp_path=tmp_path)
    block = cls(**kwargs)
    out, conv = block(X, training=False)
    np.testing.assert_allclose(np.asarray(conv), np.asarray(block.conv(X)), atol=1e-6)


def test_sublayers_and_defaults():
    block = Conv2DBlock(4)
    block.build(X.shape)
    assert tuple(block.conv.kernel.shape) == (5, 5, 3, 4)
    assert block.dropout is None and block.order == "bn_act"
    assert block.activation == "leaky_relu" and block.strides == 2
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        assert tuple(getattr(block.batch_norm, name).shape) == (4,)
    up = Conv2DTransposeBlock(4, batch_norm=False, dropout=0.5)
    up.build(X.shape)
    assert tuple(up.conv.kernel.shape) == (5, 5, 4, 3)  # (kh, kw, out, in)
    assert up.batch_norm is None and up.dropout.rate == 0.5
    assert up.activation == "relu" and up.order == "act_bn"


@pytest.mark.parametrize("cls", [Conv2DBlock, Conv2DTransposeBlock])
@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(activation="gelu"), "'gelu'"),
        (dict(order="bn_bn"), "'bn_bn'"),
        (dict(dropout=1.0), "1.0"),
        (dict(strides=2, dilation_rate=2), "dilation_rate=2"),
    ],
)
def test_rejects_bad_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(4, **kwargs)


# --- numpy references ---------------------------------------------------------

ACT = {
    "relu": lambda x: np.maximum(x, 0),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "linear": lambda x: x,
}


def conv2d_same(x, kernel, bias, stride):
    """im2col convolution, TensorFlow "same" padding (extra pad at the end)."""
    _, height, width, _ = x.shape
    kh, kw, cin, cout = kernel.shape
    out_h, out_w = math.ceil(height / stride), math.ceil(width / stride)
    pad_h = max((out_h - 1) * stride + kh - height, 0)
    pad_w = max((out_w - 1) * stride + kw - width, 0)
    pads = ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0))
    x = np.pad(x, pads)
    cols = np.stack(
        [
            x[:, i * stride : i * stride + kh, j * stride : j * stride + kw].reshape(len(x), -1)
            for i in range(out_h)
            for j in range(out_w)
        ],
        axis=1,
    )  # (batch, out_h * out_w, kh * kw * cin)
    out = cols @ kernel.reshape(-1, cout) + bias
    return out.reshape(len(x), out_h, out_w, cout)


def conv2d_transpose_same(x, kernel, bias, stride):
    """Scatter each pixel times the (kh, kw, out, in) kernel; crop to n * s."""
    batch, height, width, _ = x.shape
    kh, kw, cout, _ = kernel.shape
    full = np.zeros((batch, (height - 1) * stride + kh, (width - 1) * stride + kw, cout))
    for i in range(height):
        for j in range(width):
            full[:, i * stride : i * stride + kh, j * stride : j * stride + kw] += np.einsum(
                "abop,np->nabo", kernel, x[:, i, j]
            )
    top, left = (kh - stride) // 2, (kw - stride) // 2
    return full[:, top : top + height * stride, left : left + width * stride] + bias


def batch_norm_inference(x, gamma, beta, mean, var, eps):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


@pytest.mark.parametrize(
    "cls,reference",
    [(Conv2DBlock, conv2d_same), (Conv2DTransposeBlock, conv2d_transpose_same)],
)
@pytest.mark.parametrize("order", ["bn_act", "act_bn"])
@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "elu", "sigmoid", "linear"])
def test_matches_numpy_reference(cls, reference, order, activation):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 4, 3)).astype("float32")
    block = cls(
        4, kernel_size=3, strides=2, activation=activation, order=order,
        dropout=0.5, bn_epsilon=1e-2, return_conv_output=True,
    )
    block.build(x.shape)
    params = {
        "kernel": rng.normal(size=block.conv.kernel.shape),
        "bias": rng.normal(size=(4,)),
        "gamma": rng.uniform(0.5, 2.0, size=(4,)),
        "beta": rng.normal(size=(4,)),
        "moving_mean": rng.normal(size=(4,)),
        "moving_variance": rng.uniform(0.5, 2.0, size=(4,)),
    }
    block.conv.kernel.assign(params["kernel"].astype("float32"))
    block.conv.bias.assign(params["bias"].astype("float32"))
    for name in ("gamma", "beta", "moving_mean", "moving_variance"):
        getattr(block.batch_norm, name).assign(params[name].astype("float32"))

    conv = reference(x.astype("float64"), params["kernel"], params["bias"], 2)
    bn = lambda v: batch_norm_inference(  # noqa: E731
        v, params["gamma"], params["beta"], params["moving_mean"],
        params["moving_variance"], 1e-2,
    )
    act = ACT[activation]
    expected = act(bn(conv)) if order == "bn_act" else bn(act(conv))

    # Dropout is inactive at inference.
    out, conv_out = block(x, training=False)
    np.testing.assert_allclose(np.asarray(conv_out), conv, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-4, atol=1e-4)


def test_training_uses_batch_statistics_and_dropout():
    block = Conv2DBlock(4, kernel_size=3, activation="linear", dropout=0.5)
    out = np.asarray(block(X, training=True))
    assert np.mean(out == 0) > 0.2  # dropout zeroed about half
    plain = Conv2DBlock(4, kernel_size=3, activation="linear", bn_epsilon=1e-5)
    out = np.asarray(plain(X, training=True)).reshape(-1, 4)
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0), 1, atol=1e-2)
    # One update of the moving mean from 0: (1 - momentum) × the batch mean of the conv output.
    conv_mean = np.asarray(plain.conv(X)).reshape(-1, 4).mean(axis=0)
    np.testing.assert_allclose(np.asarray(plain.batch_norm.moving_mean), 0.01 * conv_mean, rtol=1e-4, atol=1e-7)


def test_unet_style_skip_in_functional_model(tmp_path):
    inputs = keras.Input((None, 8, 2))
    x, skip = Conv2DBlock(4, return_conv_output=True, name="down")(inputs)
    x = Conv2DTransposeBlock(2, dropout=0.5, name="up")(x)
    outputs = keras.layers.Concatenate()([x, Conv2DTransposeBlock(2, name="skip_up")(skip)])
    model = keras.Model(inputs, outputs)
    data = np.random.default_rng(2).normal(size=(1, 8, 8, 2)).astype("float32")
    expected = np.asarray(model(data))
    path = str(tmp_path / "unet.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(data)), expected, atol=1e-6)
    assert loaded.get_layer("down").conv.kernel.path.startswith("down/conv")
