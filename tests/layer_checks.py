"""Shared checks every keras_sep layer goes through (STYLE rule 7).

``check_layer`` builds the layer on a dynamic batch size, checks output shapes
against ``compute_output_shape``, counts weights, round-trips ``get_config``
and a ``.keras`` file, runs one training step whose gradient reaches every
trainable weight, and repeats a forward pass under ``mixed_float16``.
"""
import os

import keras
import numpy as np
import tensorflow as tf


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _functional(layer_cls, kwargs, input_shapes, input_dtypes):
    inputs = [
        keras.Input(shape=s[1:], dtype=d)
        for s, d in zip(input_shapes, input_dtypes)
    ]
    layer = layer_cls(**kwargs)
    outputs = layer(inputs[0] if len(inputs) == 1 else inputs)
    model = keras.Model(inputs[0] if len(inputs) == 1 else inputs, outputs)
    return layer, model


def check_layer(
    layer_cls,
    kwargs,
    inputs,
    expected_output_shapes,
    expected_trainable_weights=0,
    expected_non_trainable_weights=0,
    tmp_path=None,
    train=True,
    mixed_precision=True,
    atol=1e-6,
):
    """Run the basic checks; ``inputs`` is an array or list of arrays."""
    inputs = [np.asarray(x) for x in _as_list(inputs)]
    shapes = [x.shape for x in inputs]
    dtypes = [str(x.dtype) for x in inputs]
    call_inputs = inputs[0] if len(inputs) == 1 else inputs

    # Shapes: eager call and compute_output_shape with a None batch.
    layer = layer_cls(**kwargs)
    outputs = _as_list(layer(call_inputs))
    expected = [tuple(s) for s in _as_list_of_shapes(expected_output_shapes)]
    assert [tuple(o.shape) for o in outputs] == expected
    none_batch = [(None,) + tuple(s[1:]) for s in shapes]
    computed = layer.compute_output_shape(
        none_batch[0] if len(none_batch) == 1 else none_batch
    )
    computed = _as_list_of_shapes(computed)
    for c, e in zip(computed, expected):
        assert tuple(c)[1:] == tuple(e)[1:], (computed, expected)
        assert c[0] is None
    assert len(layer.trainable_weights) == expected_trainable_weights
    assert len(layer.non_trainable_weights) == expected_non_trainable_weights

    # Config round trip gives an identical layer.
    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    # Functional model: dynamic batch, .keras round trip with equal outputs.
    _, model = _functional(layer_cls, kwargs, shapes, dtypes)
    reference = [np.asarray(o) for o in _as_list(model(call_inputs))]
    if tmp_path is not None:
        path = os.path.join(str(tmp_path), f"{layer_cls.__name__}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        restored = [np.asarray(o) for o in _as_list(loaded(call_inputs))]
        for r, o in zip(reference, restored):
            np.testing.assert_allclose(o, r, atol=atol)
        # A different batch size through the same loaded model.
        half = [x[:1] for x in inputs]
        out1 = _as_list(loaded(half[0] if len(half) == 1 else half))
        for r, o in zip(reference, out1):
            np.testing.assert_allclose(np.asarray(o), r[:1], atol=atol)

    # One training step: every trainable weight receives a finite gradient.
    if train and expected_trainable_weights:
        with tf.GradientTape() as tape:
            outs = _as_list(model(call_inputs, training=True))
            loss = tf.add_n(
                [tf.reduce_mean(tf.square(tf.cast(o, "float32"))) for o in outs
                 if o.dtype.is_floating]
            )
        grads = tape.gradient(loss, model.trainable_weights)
        assert all(g is not None for g in grads)
        assert all(np.all(np.isfinite(np.asarray(g))) for g in grads)
        before = [np.asarray(w).copy() for w in model.trainable_weights]
        keras.optimizers.SGD(0.01).apply(grads, model.trainable_weights)
        after = [np.asarray(w) for w in model.trainable_weights]
        assert any(not np.array_equal(b, a) for b, a in zip(before, after))

    # Mixed precision: variables stay float32, compute follows the policy.
    if mixed_precision:
        keras.config.set_dtype_policy("mixed_float16")
        try:
            mp_layer = layer_cls(**kwargs)
            mp_outputs = _as_list(mp_layer(call_inputs))
            for w in mp_layer.weights:
                assert w.dtype == "float32"
            for o, r in zip(mp_outputs, outputs):
                assert tuple(o.shape) == tuple(r.shape)
                assert np.all(np.isfinite(np.asarray(o)))
        finally:
            keras.config.set_dtype_policy("float32")
        return outputs, mp_outputs
    return outputs, None


def _as_list_of_shapes(shapes):
    if isinstance(shapes, (list, tuple)) and shapes and isinstance(
        shapes[0], (list, tuple)
    ):
        return list(shapes)
    return [shapes]
