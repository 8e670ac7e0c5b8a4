"""Dense, deep (tied), denoising and convolutional autoencoders and the PCA baseline."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sep import models
from keras_sep.layers import AdditiveGaussianNoise, MaskingNoise, TiedDense
from keras_sep.models import (
    PCA,
    ConvAutoencoder,
    DenseAutoencoder,
    DenoisingAutoencoder,
    conv_autoencoder,
    deep_autoencoder,
    dense_autoencoder,
    denoising_autoencoder,
    pca_baseline,
)


def unique(variables):
    return list({id(v): v for v in variables}.values())


def kernels(model):
    return [v for v in unique(model.weights) if len(v.shape) == 2]


def low_rank_data(n=256, dim=32, rank=3, seed=0):
    """Points near a curved ``rank``-dimensional surface, in [0, 1]."""
    rng = np.random.default_rng(seed)
    latent = rng.uniform(-1, 1, (n, rank))
    mixing = rng.normal(size=(rank, dim))
    return (1 / (1 + np.exp(-(latent @ mixing + 0.3 * np.sin(2 * latent) @ mixing)))).astype(
        "float32"
    )


def assert_round_trip(model, x, tmp_path, atol=1e-6):
    """``.keras`` file and SavedModel at two batch sizes give the same outputs."""
    reference = np.asarray(model(x, training=False))
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), reference, atol=atol)
    export_dir = str(tmp_path / f"{model.name}_savedmodel")
    model.export(export_dir, format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(export_dir)
    for batch in (1, len(x)):
        out = served.serve(tf.constant(x[:batch]))
        np.testing.assert_allclose(np.asarray(out), reference[:batch], atol=atol)
    return loaded


def test_dense_autoencoder_shapes_names_and_parameters():
    model = dense_autoencoder(64, hidden=(32, 16), code_dim=4, activation="relu")
    assert isinstance(model, DenseAutoencoder)
    assert [layer.name for layer in model.layers[1:]] == [
        "encoder_0", "encoder_1", "code", "decoder_0", "decoder_1", "reconstruction",
    ]
    sizes = [64, 32, 16, 4, 16, 32, 64]
    expected = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    assert model.count_params() == expected
    x = np.random.default_rng(0).random((5, 64)).astype("float32")
    assert model(x).shape == (5, 64)
    assert model.encoder.output_shape == (None, 4)
    assert model.decoder.output_shape == (None, 64)
    np.testing.assert_allclose(model.decode(model.encode(x)), model.reconstruct(x), atol=1e-6)
    out = np.asarray(model(x))
    assert out.min() >= 0 and out.max() <= 1  # sigmoid output
    assert model.get_layer("code").activation is keras.activations.linear


def test_deep_autoencoder_defaults_are_hinton_and_tied_halves_the_kernels():
    tied, untied = deep_autoencoder(), deep_autoencoder(tied=False)
    assert tied.hidden == (1000, 500, 250) and tied.code_dim == 30 and tied.input_dim == 784
    assert len(kernels(tied)) == 4 and len(kernels(untied)) == 8
    tied_kernel_params = sum(int(np.prod(k.shape)) for k in kernels(tied))
    untied_kernel_params = sum(int(np.prod(k.shape)) for k in kernels(untied))
    assert untied_kernel_params == 2 * tied_kernel_params == 2 * 1416500
    assert untied.count_params() - tied.count_params() == tied_kernel_params
    # W6 = W1^T, W5 = W2^T, W4 = W3^T (and the code layer with the first decoder).
    encoders = tied.encoder_layers
    for encoder, decoder in zip(encoders[::-1], tied.decoder_layers):
        assert isinstance(decoder, TiedDense) and decoder.kernel is encoder.kernel
    # Encoder and decoder are views on the same layers, not nested models.
    assert not any(isinstance(layer, keras.Model) for layer in tied.layers)
    assert {id(v) for v in tied.encoder.weights} | {id(v) for v in tied.decoder.weights} == {
        id(v) for v in tied.weights
    }


@pytest.mark.parametrize("tied", [True, False])
def test_deep_autoencoder_round_trip_keeps_the_tie(tied, tmp_path):
    keras.utils.set_random_seed(3)
    model = deep_autoencoder(64, hidden=(32, 16), code_dim=4, tied=tied, name=f"deep_{tied}")
    x = low_rank_data(8, 64)
    model.compile("adam", "mse")
    model.fit(x, x, epochs=2, verbose=0)  # weights away from their initial values
    loaded = assert_round_trip(model, x, tmp_path)
    assert len(kernels(loaded)) == (3 if tied else 6)
    assert len(unique(loaded.weights)) == len(loaded.weights)
    np.testing.assert_allclose(loaded.encode(x), model.encode(x), atol=1e-6)
    if tied:
        for encoder, decoder in zip(loaded.encoder_layers[::-1], loaded.decoder_layers):
            assert decoder.kernel is encoder.kernel
        # The tie is live: changing W1 changes the reconstruction layer.
        first = loaded.get_layer("encoder_0")
        first.kernel.assign(first.kernel * 2.0)
        code = np.ones((1, 4), "float32")
        after = np.asarray(loaded.decoder(code))
        # numpy reference: the reconstruction layer computes with the doubled W1ᵀ.
        hidden = code
        for layer in loaded.decoder_layers[:-1]:
            hidden = np.asarray(layer(hidden))
        last = loaded.decoder_layers[-1]
        logits = hidden @ np.asarray(first.kernel).T + np.asarray(last.bias)
        np.testing.assert_allclose(after, np.asarray(last.activation(logits)), rtol=1e-5, atol=1e-6)


def test_deep_autoencoder_clone_and_from_config_keep_one_kernel_per_pair():
    model = deep_autoencoder(64, hidden=(32, 16), code_dim=4, name="deep_clone")
    x = low_rank_data(4, 64)
    pairs = [("code", "decoder_0"), ("encoder_1", "decoder_1"), ("encoder_0", "reconstruction")]
    # clone_model gives a plain functional model over cloned layers.
    for copy in (keras.models.clone_model(model), DenseAutoencoder.from_config(model.get_config())):
        assert len(kernels(copy)) == 3 and len(unique(copy.weights)) == len(copy.weights)
        copy.set_weights(model.get_weights())
        np.testing.assert_allclose(np.asarray(copy(x)), np.asarray(model(x)), atol=1e-6)
        for enc_name, dec_name in pairs:
            kernel = copy.get_layer(enc_name).kernel
            assert copy.get_layer(dec_name).kernel is kernel
            assert kernel is not model.get_layer(enc_name).kernel


@pytest.mark.parametrize("tied", [True, False])
def test_training_reduces_the_loss(tied):
    keras.utils.set_random_seed(4)
    x = low_rank_data()
    model = deep_autoencoder(32, hidden=(32, 16), code_dim=3, tied=tied, activation="elu")
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    first = model.evaluate(x, x, verbose=0)
    model.fit(x, x, epochs=20, batch_size=32, verbose=0)
    assert model.evaluate(x, x, verbose=0) < 0.5 * first


def digits_split():
    datasets = pytest.importorskip("sklearn.datasets")
    x = datasets.load_digits().data.astype("float32") / 16.0
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[450:]], x[order[:450]]


@pytest.mark.slow
def test_deep_autoencoder_beats_pca_on_digits_at_10_dimensions():
    train, test = digits_split()
    pca_error = np.mean((PCA(10).fit(train).reconstruct(test) - test) ** 2)
    keras.utils.set_random_seed(0)
    model = deep_autoencoder(64, hidden=(256, 128, 64), code_dim=10, activation="elu")
    steps = 60 * int(np.ceil(len(train) / 64))
    model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(3e-3, steps)), "mse")
    model.fit(train, train, epochs=60, batch_size=64, verbose=0)
    ae_error = np.mean((model.reconstruct(test) - test) ** 2)
    assert 0.01 < pca_error < 0.03  # PCA keeps about 3/4 of the variance
    assert ae_error < 0.7 * pca_error, (ae_error, pca_error)


def test_pca_matches_sklearn_and_numpy_reference():
    decomposition = pytest.importorskip("sklearn.decomposition")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 12)) @ rng.normal(size=(12, 12)) + 3.0
    ours = pca_baseline(4).fit(x)
    theirs = decomposition.PCA(4, svd_solver="full").fit(x)
    np.testing.assert_allclose(ours.reconstruct(x), theirs.inverse_transform(theirs.transform(x)),
                               atol=1e-9)
    np.testing.assert_allclose(ours.explained_variance_, theirs.explained_variance_, rtol=1e-9)
    np.testing.assert_allclose(
        ours.explained_variance_ratio_, theirs.explained_variance_ratio_, rtol=1e-9
    )
    # Components agree up to sign, and so do the codes.
    signs = np.sign(np.sum(ours.components_ * theirs.components_, axis=1))
    np.testing.assert_allclose(ours.components_, signs[:, None] * theirs.components_, atol=1e-9)
    np.testing.assert_allclose(ours.encode(x), theirs.transform(x) * signs, atol=1e-9)
    # Eckart-Young: the error is the variance of the discarded directions.
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(x, rowvar=False)))[::-1]
    error = np.sum((ours.reconstruct(x) - x) ** 2) / (len(x) - 1)
    np.testing.assert_allclose(error, eigenvalues[4:].sum(), rtol=1e-9)


def test_pca_interface_and_errors():
    x = low_rank_data(50, 8).astype("float64")
    pca = PCA(8).fit(x)
    np.testing.assert_allclose(pca.reconstruct(x), x, atol=1e-10)  # full rank is lossless
    assert pca.encode(x).shape == (50, 8) and pca.decode(pca.encode(x)).shape == (50, 8)
    with pytest.raises(ValueError, match="not fitted"):
        PCA(2).encode(x)
    with pytest.raises(ValueError, match="code_dim"):
        PCA(0)
    with pytest.raises(ValueError, match="exceeds"):
        PCA(9).fit(x)
    with pytest.raises(ValueError, match="codes"):
        pca.decode(np.zeros((2, 3)))


def test_denoising_autoencoder_trains_noisy_to_clean(tmp_path):
    keras.utils.set_random_seed(6)
    x = low_rank_data(512, 32)
    autoencoder = deep_autoencoder(32, hidden=(64,), code_dim=3, activation="elu")
    model = denoising_autoencoder(autoencoder, MaskingNoise(0.25, seed=1), name="dae")
    assert isinstance(model, DenoisingAutoencoder)
    np.testing.assert_allclose(np.asarray(model(x)), np.asarray(autoencoder(x)), atol=1e-6)
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    model.fit(x, x, epochs=40, batch_size=32, verbose=0)
    noisy = model.corrupt(x)
    noisy_error = np.mean((noisy - x) ** 2)
    denoised_error = np.mean((model.reconstruct(noisy) - x) ** 2)
    assert denoised_error < 0.25 * noisy_error, (denoised_error, noisy_error)
    assert model.encoder.output_shape == (None, 3)
    loaded = assert_round_trip(model, x[:4], tmp_path)
    inner = loaded.autoencoder
    for encoder, decoder in zip(inner.encoder_layers[::-1], inner.decoder_layers):
        assert decoder.kernel is encoder.kernel
    assert isinstance(loaded.corruption, MaskingNoise) and loaded.corruption.rate == 0.25


def test_denoising_autoencoder_rejects_bad_arguments():
    with pytest.raises(ValueError, match="autoencoder"):
        DenoisingAutoencoder("not a model", MaskingNoise(0.1))
    with pytest.raises(ValueError, match="corruption"):
        DenoisingAutoencoder(dense_autoencoder(8, hidden=(), code_dim=2), "gaussian")


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(code_dim=6),
        dict(downsampling="stride", upsampling="nearest", batch_norm=True),
        dict(upsampling="bed_of_nails"),
    ],
    ids=["dense-code", "stride-nearest-bn", "bed-of-nails"],
)
def test_conv_autoencoder_shapes_and_round_trip(kwargs, tmp_path):
    model = conv_autoencoder((16, 12, 2), filters=(4, 8), **kwargs)
    assert isinstance(model, ConvAutoencoder)
    x = np.random.default_rng(7).random((3, 16, 12, 2)).astype("float32")
    assert model(x).shape == (3, 16, 12, 2)
    code_shape = (None, 6) if "code_dim" in kwargs else (None, 4, 3, 8)
    assert model.encoder.output_shape == code_shape
    assert model.decoder.output_shape == (None, 16, 12, 2)
    assert not any(isinstance(layer, keras.Model) for layer in model.layers)
    np.testing.assert_allclose(model.decode(model.encode(x)), model.reconstruct(x), atol=1e-6)
    assert_round_trip(model, x, tmp_path, atol=1e-5)


def test_conv_autoencoder_training_reduces_the_loss():
    keras.utils.set_random_seed(8)
    rng = np.random.default_rng(8)
    rows = np.arange(16)[None, :, None, None]
    centres = rng.integers(3, 13, (64, 1, 1, 1))
    x = np.exp(-0.5 * (rows - centres) ** 2).astype("float32") * np.ones((1, 16, 16, 1), "float32")
    model = conv_autoencoder((16, 16, 1), filters=(8, 16), code_dim=4)
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    first = model.evaluate(x, x, verbose=0)
    model.fit(x, x, epochs=15, batch_size=16, verbose=0)
    assert model.evaluate(x, x, verbose=0) < 0.5 * first


def test_autoencoder_arguments_are_checked():
    with pytest.raises(ValueError, match="hidden"):
        dense_autoencoder(8, hidden=(4, 0), code_dim=2)
    with pytest.raises(ValueError, match="multiples of 4"):
        conv_autoencoder((10, 12, 1), filters=(4, 8))
    with pytest.raises(ValueError, match="upsampling"):
        conv_autoencoder((8, 8, 1), filters=(4,), upsampling="cubic")


def test_gaussian_denoiser_on_conv_autoencoder_builds():
    model = denoising_autoencoder(
        conv_autoencoder((8, 8, 1), filters=(4,)), AdditiveGaussianNoise(0.1, 0.0, 1.0)
    )
    assert model.output_shape == (None, 8, 8, 1)


@pytest.mark.parametrize("build,shape", [
    (lambda: deep_autoencoder(16, hidden=(8,), code_dim=2), (3, 16)),
    (lambda: conv_autoencoder((8, 8, 1), filters=(4,), code_dim=3), (3, 8, 8, 1)),
    (lambda: denoising_autoencoder(dense_autoencoder(16, hidden=(8,), code_dim=2),
                                   MaskingNoise(0.2)), (3, 16)),
], ids=["deep-tied", "conv", "denoising"])
def test_mixed_precision(build, shape):
    keras.config.set_dtype_policy("mixed_float16")
    model = build()
    x = np.random.default_rng(9).random(shape).astype("float32")
    out = model(x)
    assert out.dtype == "float16" and np.all(np.isfinite(np.asarray(out)))
    assert all(w.dtype == "float32" for w in model.weights)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(tf.cast(model(x, training=True), "float32") - x))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.all(np.isfinite(np.asarray(g))) for g in grads)


@pytest.mark.parametrize("build", [
    lambda: models.dense_autoencoder(16, bogus=1),
    lambda: models.deep_autoencoder(16, hidden=(8,), code_dim=4, bogus=1),
    lambda: models.conv_autoencoder((16, 16, 1), bogus=1),
    lambda: models.denoising_autoencoder(models.dense_autoencoder(16), keras.layers.GaussianNoise(0.1), bogus=1),
    lambda: models.encoder_decoder((16, 16, 1), 3, bogus=1),
    lambda: models.unet((16, 16, 1), 3, bogus=1),
    lambda: models.unet_separator(filters=(4, 8), bins=32, frames=16, bogus=1),
])
def test_misspelt_builder_argument_is_an_error(build):
    """Keras' functional models swallow unknown keyword arguments: a typo
    would build the defaults without a word. Ours raise."""
    with pytest.raises(TypeError, match=r"got unknown arguments \['bogus'\]"):
        build()


@pytest.mark.parametrize("build,shape", [
    (lambda: deep_autoencoder(64), (64,)),
    (lambda: dense_autoencoder(64), (64,)),
    (lambda: conv_autoencoder((8, 8, 1)), (8, 8, 1)),
    (lambda: denoising_autoencoder(dense_autoencoder(64), MaskingNoise(0.2)), (64,)),
], ids=["deep", "dense", "conv", "denoising"])
def test_default_builders_learn_with_a_plain_fit(build, shape):
    """Every builder's defaults train with Adam: no collapse to the mean
    image (the deep autoencoder's logistic units with Glorot's narrow
    initialisation stayed at 1.02× the mean image's error here)."""
    train, test = digits_split()
    train, test = train.reshape((-1,) + shape), test.reshape((-1,) + shape)
    keras.utils.set_random_seed(10)
    model = build()
    model.compile(keras.optimizers.Adam(1e-3), "mse")
    model.fit(train, train, epochs=4, batch_size=32, verbose=0)
    mean_image_error = np.mean((train.mean(0) - test) ** 2)
    assert np.mean((model.reconstruct(test) - test) ** 2) < 0.6 * mean_image_error
