"""Encoder–decoder FCN (unpooling / transposed conv / fixed up-sampling) and U-Net."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sep.models import EncoderDecoder, UNet, encoder_decoder, unet
from keras_sep.models.unet import unet_sizes

MODES = ("unpool", "transpose", "nearest", "bilinear", "bed_of_nails")


def images(n=2, size=16, channels=3, seed=0):
    return np.random.default_rng(seed).random((n, size, size, channels)).astype("float32")


def round_trip(model, x, tmp_path, saved_model=True, atol=1e-5):
    reference = np.asarray(model(x, training=False))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), reference, atol=atol)
    if saved_model:
        export_dir = str(tmp_path / "saved_model")
        model.export(export_dir, format="tf_saved_model", verbose=False)
        served = tf.saved_model.load(export_dir)
        for batch in (1, len(x)):
            out = np.asarray(served.serve(tf.constant(x[:batch])))
            np.testing.assert_allclose(out, reference[:batch], atol=atol)


def toy_segmentation(n=32, size=16, seed=0):
    """Bright squares on noise; class 1 inside the squares."""
    rng = np.random.default_rng(seed)
    x = 0.3 * rng.random((n, size, size, 1)).astype("float32")
    y = np.zeros((n, size, size), "int32")
    for i in range(n):
        top, left = rng.integers(0, size - 6, 2)
        y[i, top : top + 6, left : left + 6] = 1
    x[y == 1] += 0.6
    return x, y


@pytest.mark.parametrize("mode", MODES)
def test_encoder_decoder_shapes_softmax_and_keras_round_trip(mode, tmp_path):
    model = encoder_decoder((16, 16, 3), 5, filters=(4, 8), upsampling=mode)
    assert isinstance(model, EncoderDecoder)
    x = images()
    probs = np.asarray(model(x))
    assert probs.shape == (2, 16, 16, 5)
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-5)
    layer_names = [layer.name for layer in model.layers]
    prefix = "unpool" if mode == "unpool" else "upsample"
    assert {f"{prefix}_0", f"{prefix}_1"} <= set(layer_names)
    round_trip(model, x, tmp_path, saved_model=mode in ("unpool", "transpose"))


def test_encoder_decoder_accepts_any_multiple_size():
    model = encoder_decoder((None, None, 1), 2, filters=(4, 8), upsampling="unpool")
    assert model(np.zeros((1, 12, 20, 1), "float32")).shape == (1, 12, 20, 2)


def unpool_reference(values, indices, height, width):
    """Numpy max unpooling: each value at its flat (row, column, channel) index."""
    batch, channels = values.shape[0], values.shape[-1]
    out = np.zeros((batch, height * width * channels), values.dtype)
    for b in range(batch):
        out[b, indices[b].ravel()] = values[b].ravel()
    return out.reshape(batch, height, width, channels)


def test_unpooling_output_is_non_zero_only_at_the_pooling_indices():
    keras.utils.set_random_seed(2)
    model = encoder_decoder((16, 16, 3), 3, filters=(4, 8, 8), upsampling="unpool")
    deepest = len(model.filters) - 1
    pool = model.get_layer(f"pool_{deepest}")
    pooled, argmax = pool.output
    probe = keras.Model(
        model.input, [pool.input, pooled, argmax, model.get_layer("unpool_0").output]
    )
    pre_pool, pooled, argmax, unpooled = [np.asarray(t) for t in probe(images(3, seed=1))]
    assert unpooled.shape == pre_pool.shape == (3, 4, 4, 8)
    np.testing.assert_array_equal(unpooled, unpool_reference(pooled, argmax, 4, 4))
    # Non-zero only where the indices point, and there it is the maximum.
    pointed = np.zeros(unpooled.size // 3, bool)
    for b in range(3):
        pointed[:] = False
        pointed[argmax[b].ravel()] = True
        flat = unpooled[b].ravel()
        assert np.all(flat[~pointed] == 0)
        np.testing.assert_array_equal(flat[pointed], pre_pool[b].ravel()[pointed])
    assert np.count_nonzero(unpooled) > 0
    # Every 2x2 window keeps at most one value per channel.
    windows = (unpooled != 0).reshape(3, 2, 2, 2, 2, 8).sum(axis=(2, 4))
    assert windows.max() == 1


@pytest.mark.parametrize("mode", ["unpool", "transpose", "bilinear"])
def test_encoder_decoder_training_reduces_the_loss(mode):
    keras.utils.set_random_seed(3)
    x, y = toy_segmentation()
    model = encoder_decoder((16, 16, 1), 2, filters=(8, 16), upsampling=mode, batch_norm=False)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.7 * first


def test_encoder_decoder_arguments_are_checked():
    with pytest.raises(ValueError, match="upsampling"):
        encoder_decoder((16, 16, 1), 2, upsampling="cubic")
    with pytest.raises(ValueError, match="multiples of 8"):
        encoder_decoder((20, 16, 1), 2, filters=(4, 4, 4), upsampling="transpose")
    with pytest.raises(ValueError, match="num_classes"):
        encoder_decoder((16, 16, 1), 1)


def test_unet_paper_sizes_and_parameter_count():
    assert unet_sizes(572, 5) == ([568, 280, 136, 64, 28], 388)
    model = unet((572, 572, 1), 2, padding="valid")
    assert model.output_shape == (None, 388, 388, 2)
    # The paper's network: 31,030,658 weights with bias in every convolution.
    assert model.count_params() == 31_030_658
    # Skip tensors are centre-cropped: 568 -> 392 at the top level.
    crop = model.get_layer("crop_0")
    assert crop.cropping == ((88, 88), (88, 88))
    assert model.get_layer("skip_0").output.shape == (None, 392, 392, 128)


def test_unet_same_padding_keeps_size_and_concatenates_skips():
    model = unet((None, None, 2), 3, filters=(4, 8, 16))
    assert isinstance(model, UNet)
    assert model(np.zeros((1, 16, 24, 2), "float32")).shape == (1, 16, 24, 3)
    assert model.get_layer("skip_1").output.shape[-1] == 16  # 8 skip + 8 up
    assert model.get_layer("skip_0").output.shape[-1] == 8


@pytest.mark.parametrize(
    "kwargs",
    [dict(padding="valid"), dict(upsampling="bilinear", batch_norm=True, dropout=0.5)],
    ids=["valid", "bilinear-bn-dropout"],
)
def test_unet_round_trip(kwargs, tmp_path):
    size = 44 if kwargs.get("padding") == "valid" else 16
    model = unet((size, size, 1), 2, filters=(4, 8, 8), **kwargs)
    x = images(2, size, 1)
    if kwargs.get("padding") == "valid":
        assert model.output_shape == (None, unet_sizes(size, 3)[1], unet_sizes(size, 3)[1], 2)
    round_trip(model, x, tmp_path)


def test_unet_valid_crops_the_centre():
    """The skip tensor is cut to its centre, split evenly on both sides."""
    model = unet((44, 44, 1), 2, filters=(1, 1, 1), padding="valid")
    crop = model.get_layer("crop_0")
    probe = keras.Model(model.input, [crop.input, crop.output])
    before, after = [np.asarray(t) for t in probe(images(1, 44, 1))]
    (top, bottom), (left, right) = crop.cropping
    assert top + bottom == before.shape[1] - after.shape[1]
    assert abs(top - bottom) <= 1
    np.testing.assert_array_equal(after, before[:, top : before.shape[1] - bottom,
                                                left : before.shape[2] - right])


def test_unet_training_reduces_the_loss():
    keras.utils.set_random_seed(4)
    x, y = toy_segmentation()
    model = unet((16, 16, 1), 2, filters=(8, 16, 32))
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    first = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert model.evaluate(x, y, verbose=0) < 0.7 * first


def test_unet_arguments_are_checked():
    with pytest.raises(ValueError, match="does not fit"):
        unet((570, 570, 1), 2, padding="valid")
    with pytest.raises(ValueError, match="static"):
        unet((None, None, 1), 2, padding="valid")
    with pytest.raises(ValueError, match="multiples of 16"):
        unet((20, 20, 1), 2)
    with pytest.raises(ValueError, match="padding"):
        unet((16, 16, 1), 2, padding="full")


@pytest.mark.parametrize("build", [
    lambda: encoder_decoder((16, 16, 1), 3, filters=(4, 8), upsampling="unpool"),
    lambda: encoder_decoder((16, 16, 1), 3, filters=(4, 8), upsampling="transpose"),
    lambda: unet((16, 16, 1), 3, filters=(4, 8)),
], ids=["unpool", "transpose", "unet"])
def test_mixed_precision(build):
    keras.config.set_dtype_policy("mixed_float16")
    model = build()
    out = np.asarray(model(images(2, 16, 1)))
    assert all(w.dtype == "float32" for w in model.weights)
    assert np.all(np.isfinite(out)) and out.shape == (2, 16, 16, 3)
