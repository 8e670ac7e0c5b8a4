"""TiedDense: one kernel per encoder/decoder pair, kept through .keras files."""
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_checks import check_layer

from keras_sep.layers.tied_dense import TiedDense

SIZES = (784, 1000, 500, 250, 30)


def deep_autoencoder(tied=True, sizes=SIZES):
    """Hinton & Salakhutdinov's 784-1000-500-250-30-250-500-1000-784 net."""
    inputs = keras.Input((sizes[0],))
    x = inputs
    encoders = []
    for i, units in enumerate(sizes[1:]):
        last = i == len(sizes) - 2
        encoders.append(keras.layers.Dense(units, None if last else "sigmoid", name=f"enc{i}"))
        x = encoders[-1](x)
    for i, encoder in enumerate(reversed(encoders)):
        if tied:
            x = TiedDense(encoder, activation="sigmoid", name=f"dec{i}")(x)
        else:
            x = keras.layers.Dense(encoder.kernel.shape[0], "sigmoid", name=f"dec{i}")(x)
    return keras.Model(inputs, x)


def unique(variables):
    return list({id(v): v for v in variables}.values())


def kernels(model):
    return [v for v in unique(model.weights) if len(v.shape) == 2]


def test_variable_count_tied_and_untied():
    tied, untied = deep_autoencoder(True), deep_autoencoder(False)
    assert len(kernels(tied)) == 4 and len(kernels(untied)) == 8
    assert len(unique(tied.weights)) == len(tied.weights) == 12  # 4 W, 8 b
    assert len(unique(untied.weights)) == 16
    # W6 = W1^T, W5 = W2^T, W4 = W3^T (and the code layer W_dec0 = W4^T).
    for i in range(4):
        assert tied.get_layer(f"dec{3 - i}").kernel is tied.get_layer(f"enc{i}").kernel
    tied_params = sum(int(np.prod(v.shape)) for v in tied.weights)
    untied_params = sum(int(np.prod(v.shape)) for v in untied.weights)
    assert untied_params - tied_params == sum(int(np.prod(k.shape)) for k in kernels(tied))


def test_numpy_reference():
    rng = np.random.default_rng(0)
    encoder = keras.layers.Dense(5)
    encoder.build((None, 7))
    layer = TiedDense(encoder, activation="sigmoid")
    layer.build((None, 5))
    layer.bias.assign(rng.normal(size=(7,)).astype("float32"))
    h = rng.normal(size=(3, 5)).astype("float32")
    w, b = np.asarray(encoder.kernel, "float64"), np.asarray(layer.bias, "float64")
    expected = 1 / (1 + np.exp(-(h @ w.T + b)))
    np.testing.assert_allclose(np.asarray(layer(h)), expected, rtol=1e-5, atol=1e-6)
    no_bias = TiedDense(encoder, use_bias=False)
    np.testing.assert_allclose(np.asarray(no_bias(h)), h @ w.T, rtol=1e-5, atol=1e-5)
    assert no_bias.weights == [] and no_bias.compute_output_shape((None, 2, 5)) == (None, 2, 7)


def test_basic_checks(tmp_path):
    encoder = keras.layers.Dense(4)
    encoder.build((None, 6))
    h = np.random.default_rng(1).normal(size=(2, 3, 4)).astype("float32")
    check_layer(
        TiedDense, dict(tied_to=encoder, activation="relu"), h, (2, 3, 6),
        expected_trainable_weights=1, tmp_path=tmp_path,
    )


def test_gradient_reaches_shared_kernel_from_both_sides():
    rng = np.random.default_rng(2)
    encoder = keras.layers.Dense(3)
    decoder = TiedDense(encoder)
    x = rng.normal(size=(4, 6)).astype("float32")
    g = rng.normal(size=(4, 6)).astype("float32")  # loss = sum(y * g): dL/dy = g
    decoder(encoder(x))
    w = np.asarray(encoder.kernel, "float64")
    h = x @ w + np.asarray(encoder.bias)
    decoder_part = g.T @ h  # y = h W^T + b  ->  dL/dW = (dL/dy)^T h
    encoder_part = x.T @ (g @ w)  # h = x W + c  ->  dL/dW = x^T (dL/dy W)

    with tf.GradientTape() as tape:
        total = tf.reduce_sum(decoder(encoder(x)) * g)
    grad_total = np.asarray(tape.gradient(total, encoder.kernel))
    with tf.GradientTape() as tape:  # decoder side only: h is a constant
        dec_only = tf.reduce_sum(decoder(tf.stop_gradient(encoder(x))) * g)
    grad_decoder = np.asarray(tape.gradient(dec_only, encoder.kernel))

    np.testing.assert_allclose(grad_decoder, decoder_part, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(grad_total - grad_decoder, encoder_part, rtol=1e-4, atol=1e-4)
    assert np.abs(decoder_part).max() > 1e-3 and np.abs(encoder_part).max() > 1e-3


def test_one_training_step():
    model = deep_autoencoder(True)
    model.compile(keras.optimizers.SGD(0.5), "mse")
    x = np.random.default_rng(3).uniform(size=(4, 784)).astype("float32")
    before = [np.asarray(v).copy() for v in model.weights]
    loss = model.train_on_batch(x, x)
    assert np.isfinite(loss)
    after = [np.asarray(v) for v in model.weights]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))
    # The decoder computes with the updated encoder kernel.
    dec, enc = model.get_layer("dec3"), model.get_layer("enc0")
    h = np.random.default_rng(4).uniform(size=(2, 1000)).astype("float32")
    expected = 1 / (1 + np.exp(-(h @ after[0].T + np.asarray(dec.bias))))
    np.testing.assert_allclose(np.asarray(dec(h)), expected, rtol=1e-4, atol=1e-5)
    assert enc.kernel is dec.kernel


def _assert_tied_after_load(model, pairs, data):
    """Tie kept: one variable, and writing it changes the decoder output."""
    assert len(unique(model.weights)) == len(model.weights)
    for enc_name, dec_name in pairs:
        encoder, decoder = model.get_layer(enc_name), model.get_layer(dec_name)
        assert decoder.tied_to is encoder and decoder.kernel is encoder.kernel
    encoder = model.get_layer(pairs[0][0])
    encoder.kernel.assign(encoder.kernel + 0.5)
    decoder = model.get_layer(pairs[0][1])
    h = np.ones((1, encoder.kernel.shape[1]), "float32")
    logits = h @ np.asarray(encoder.kernel).T + np.asarray(decoder.bias)
    expected = np.asarray(decoder.activation(logits))
    np.testing.assert_allclose(np.asarray(decoder(h)), expected, rtol=1e-5, atol=1e-5)


def test_tie_survives_keras_save_and_load(tmp_path):
    model = deep_autoencoder(True, sizes=(64, 32, 16, 8, 2))
    data = np.random.default_rng(5).uniform(size=(3, 64)).astype("float32")
    expected = np.asarray(model(data))
    path = str(tmp_path / "tied_ae.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(np.asarray(loaded(data)), expected, atol=1e-6)
    assert len(kernels(loaded)) == 4 and len(loaded.weights) == 12
    _assert_tied_after_load(loaded, [(f"enc{i}", f"dec{3 - i}") for i in range(4)], data)


def test_tie_survives_sequential_and_decoder_first(tmp_path):
    data = np.random.default_rng(6).uniform(size=(2, 6)).astype("float32")
    encoder = keras.layers.Dense(3, name="enc")
    sequential = keras.Sequential([keras.Input((6,)), encoder, TiedDense(encoder, name="dec")])
    sequential.save(tmp_path / "seq.keras")
    loaded = keras.saving.load_model(tmp_path / "seq.keras")
    np.testing.assert_allclose(np.asarray(loaded(data)), np.asarray(sequential(data)), atol=1e-6)
    _assert_tied_after_load(loaded, [("enc", "dec")], data)

    # The decoder may come before its encoder in the saved layer list.
    encoder = keras.layers.Dense(3, name="enc")
    encoder.build((None, 6))
    code, signal = keras.Input((3,)), keras.Input((6,))
    deep = keras.layers.Identity()(keras.layers.Identity()(signal))
    model = keras.Model([code, signal], [TiedDense(encoder, name="dec")(code), encoder(deep)])
    assert [op.name for op in model.operations].index("dec") < [
        op.name for op in model.operations
    ].index("enc")
    inputs = [data[:, :3], data]
    expected = [np.asarray(o) for o in model(inputs)]
    model.save(tmp_path / "first.keras")
    loaded = keras.saving.load_model(tmp_path / "first.keras")
    for out, ref in zip(loaded(inputs), expected):
        np.testing.assert_allclose(np.asarray(out), ref, atol=1e-6)
    assert loaded.get_layer("dec").kernel is loaded.get_layer("enc").kernel
    assert len(loaded.weights) == 3


def test_mixed_float16():
    data = np.random.default_rng(7).uniform(size=(2, 64)).astype("float32")
    reference = deep_autoencoder(True, sizes=(64, 32, 8))
    keras.config.set_dtype_policy("mixed_float16")
    model = deep_autoencoder(True, sizes=(64, 32, 8))
    model.set_weights(reference.get_weights())
    out = model(data)
    assert out.dtype == "float16"
    assert all(v.dtype == "float32" for v in model.weights)
    np.testing.assert_allclose(np.asarray(out, "float32"), np.asarray(reference(data)), atol=5e-3)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.cast(model(data), "float32") ** 2)
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None and np.all(np.isfinite(np.asarray(g))) for g in grads)


def test_config_and_errors():
    encoder = keras.layers.Dense(4)
    layer = TiedDense(encoder, activation="relu", use_bias=False, name="dec")
    config = layer.get_config()
    assert set(config) - {"name", "trainable", "dtype"} == {
        "tied_to", "activation", "use_bias", "bias_initializer",
        "bias_regularizer", "bias_constraint",
    }
    assert TiedDense.from_config(config).tied_to is encoder
    serialized = keras.saving.serialize_keras_object(layer)
    copy = keras.saving.deserialize_keras_object(serialized)
    assert isinstance(copy.tied_to, keras.layers.Dense) and copy.tied_to is not encoder

    with pytest.raises(ValueError, match="must be built"):
        layer(np.zeros((1, 4), "float32"))
    encoder.build((None, 6))
    with pytest.raises(ValueError, match="expects inputs with 4 features"):
        TiedDense(encoder)(np.zeros((1, 5), "float32"))
    with pytest.raises(ValueError, match="keras.layers.Dense"):
        TiedDense(keras.layers.Conv1D(2, 3))


# ---------------------------------------------------------------------------
# Every Keras operation keeps the tie or refuses clearly
# ---------------------------------------------------------------------------
SMALL = (12, 8, 4)
PAIRS = [("enc0", "dec1"), ("enc1", "dec0")]


def _data(seed=8):
    return np.random.default_rng(seed).uniform(size=(3, SMALL[0])).astype("float32")


def test_clone_model_ties_the_clone_to_its_own_encoder():
    model = deep_autoencoder(True, sizes=SMALL)
    clone = keras.models.clone_model(model)
    assert len(kernels(clone)) == 2 and len(unique(clone.weights)) == len(clone.weights) == 6
    for enc_name, dec_name in PAIRS:
        assert clone.get_layer(dec_name).tied_to is clone.get_layer(enc_name)
        assert clone.get_layer(dec_name).kernel is not model.get_layer(enc_name).kernel
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(clone(_data())), np.asarray(model(_data())), atol=1e-6)
    before = np.asarray(model(_data()))
    _assert_tied_after_load(clone, PAIRS, _data())
    np.testing.assert_array_equal(np.asarray(model(_data())), before)  # original untouched


def test_model_from_config_keeps_the_tie():
    model = deep_autoencoder(True, sizes=SMALL)
    rebuilt = keras.Model.from_config(model.get_config())
    assert len(kernels(rebuilt)) == 2
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(np.asarray(rebuilt(_data())), np.asarray(model(_data())), atol=1e-6)
    _assert_tied_after_load(rebuilt, PAIRS, _data())


def _nested(encoder_nested=True, decoder_nested=True):
    """Encoder and decoder as sub-models (or layers) of an outer model."""
    encoder = keras.layers.Dense(3, name="enc")
    encoder.build((None, 6))
    decoder = TiedDense(encoder, activation="sigmoid", name="dec")
    x = keras.Input((6,))
    encode = keras.Model(x, encoder(x), name="encoder") if encoder_nested else encoder
    if decoder_nested:
        z = keras.Input((3,))
        decode = keras.Model(z, decoder(z), name="decoder")
    else:
        decode = decoder
    inputs = keras.Input((6,))
    return keras.Model(inputs, decode(encode(inputs)))


def _find(model, name):
    for layer in model.layers:
        if layer.name == name:
            return layer
        if isinstance(layer, keras.Model):
            found = _find(layer, name)
            if found is not None:
                return found
    return None


@pytest.mark.parametrize("encoder_nested,decoder_nested", [(True, False), (False, True)])
def test_one_side_nested_saves_and_loads_tied(tmp_path, encoder_nested, decoder_nested):
    data = np.random.default_rng(9).uniform(size=(2, 6)).astype("float32")
    model = _nested(encoder_nested, decoder_nested)
    model.save(tmp_path / "nested.keras")
    loaded = keras.saving.load_model(tmp_path / "nested.keras")
    np.testing.assert_allclose(np.asarray(loaded(data)), np.asarray(model(data)), atol=1e-6)
    encoder, decoder = _find(loaded, "enc"), _find(loaded, "dec")
    assert decoder.kernel is encoder.kernel and len(loaded.weights) == 3
    # Writing the encoder's kernel changes what the loaded model decodes.
    encoder.kernel.assign(encoder.kernel * 2.0)
    h = data @ np.asarray(encoder.kernel) + np.asarray(encoder.bias)
    expected = 1 / (1 + np.exp(-(h @ np.asarray(encoder.kernel).T + np.asarray(decoder.bias))))
    np.testing.assert_allclose(np.asarray(loaded(data)), expected, rtol=1e-5, atol=1e-6)


def test_encoder_and_decoder_in_separate_sub_models_are_refused(tmp_path):
    """Keras 3 rebuilds a layer shared by two nested sub-models as two layers."""
    data = np.random.default_rng(10).uniform(size=(2, 6)).astype("float32")
    model = _nested()
    assert len(model.weights) == 3
    model.save(tmp_path / "separate.keras")
    with pytest.raises(ValueError, match="saved in separate nested sub-models"):
        keras.saving.load_model(tmp_path / "separate.keras")
    for copy in (keras.Model.from_config(model.get_config()), keras.models.clone_model(model)):
        with pytest.raises(ValueError, match="holds a copy of its encoder 'enc'"):
            copy(data)
    with pytest.raises(ValueError, match="would stay tied to the original model"):
        keras.models.clone_model(model, recursive=True)


def test_layer_from_config_alone():
    encoder = keras.layers.Dense(3, name="enc")
    x = keras.Input((6,))
    h = encoder(x)
    decoder = TiedDense(encoder, name="dec")
    # In process, the config holds the live encoder: the tie is kept.
    same = TiedDense.from_config(decoder.get_config())
    assert same.tied_to is encoder
    code = np.ones((2, 3), "float32")
    np.testing.assert_allclose(
        np.asarray(same(code)), code @ np.asarray(encoder.kernel).T, rtol=1e-6
    )
    # From JSON it holds a placeholder copy, refused until tied in a graph.
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(decoder)))
    detached = keras.saving.deserialize_keras_object(serialized)
    with pytest.raises(ValueError, match="rebuilt from a config"):
        detached(code)
    tied = keras.saving.deserialize_keras_object(serialized)
    model = keras.Model(x, tied(h))
    assert tied.tied_to is encoder and len(model.weights) == 3
    data = np.random.default_rng(11).uniform(size=(2, 6)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(model(data)),
        np.asarray(encoder(data)) @ np.asarray(encoder.kernel).T,
        rtol=1e-5, atol=1e-6,
    )


def test_training_step_updates_the_shared_kernel_once():
    model = deep_autoencoder(True, sizes=SMALL)
    x = _data(12)
    kernel = model.get_layer("enc0").kernel
    assert sum(v is kernel for v in model.trainable_weights) == 1
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(model(x) - x))
    grad = np.asarray(tape.gradient(loss, kernel))
    before = np.asarray(kernel).copy()
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.train_on_batch(x, x)
    # One SGD update with the sum of both sides' gradients, applied once.
    np.testing.assert_allclose(np.asarray(kernel), before - 0.1 * grad, rtol=1e-5, atol=1e-7)
    assert model.get_layer("dec1").kernel is kernel
