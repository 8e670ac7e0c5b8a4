"""Shared helpers of the autoencoder models (private).

An autoencoder's ``.encoder`` and ``.decoder`` are separate functional models
over the very layer objects of the main model, built on first access. They
are never nested into the main model, which stays flat: ``TiedDense`` ties
survive ``.keras`` files only between layers of one flat model.
"""
import keras
import numpy as np


# What a functional model's constructor may pass on to keras.Model.
_MODEL_KWARGS = {"name", "trainable", "dtype"}


def check_model_kwargs(cls, kwargs):
    """TypeError for keyword arguments a Keras functional model would
    swallow silently (a misspelt ``filterz=`` builds the defaults)."""
    unknown = sorted(set(kwargs) - _MODEL_KWARGS)
    if unknown:
        raise TypeError(f"{cls.__name__} got unknown arguments {unknown}")


def chain_model(layers, input_shape, name):
    """Functional model applying ``layers`` one after the other."""
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name=name)


def cached_submodel(model, attribute, build):
    """``build()`` once, cached outside Keras's attribute tracking.

    A tracked attribute would make the sub-model part of the main model's
    saved state and weight lists; it is a view on the same layers instead.
    """
    cached = model.__dict__.get(attribute)
    if cached is None:
        cached = build()
        object.__setattr__(model, attribute, cached)
    return cached


def predict_numpy(model, x, batch_size=256):
    """``model(x)`` in inference mode as a float numpy array, in batches."""
    x = np.asarray(x, dtype="float32")
    outputs = [
        keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False))
        for i in range(0, len(x), batch_size)
    ]
    if not outputs:
        return np.zeros((0,) + tuple(model.output.shape[1:]), "float32")
    return np.concatenate(outputs, axis=0)


def check_units(name, units, allow_empty=True):
    """Validate a tuple of positive layer sizes; return it as ints."""
    units = tuple(int(u) for u in units)
    if (not units and not allow_empty) or any(u < 1 for u in units):
        raise ValueError(f"{name} must be positive sizes, got {units!r}")
    return units


class CodecMixin:
    """``encode`` / ``decode`` / ``reconstruct`` as numpy, for models with
    ``encoder`` and ``decoder`` sub-models."""

    def encode(self, x, batch_size=256):
        """Codes of ``x`` as a numpy array."""
        return predict_numpy(self.encoder, x, batch_size)

    def decode(self, codes, batch_size=256):
        """Reconstructions decoded from ``codes`` as a numpy array."""
        return predict_numpy(self.decoder, codes, batch_size)

    def reconstruct(self, x, batch_size=256):
        """The model's output for ``x`` (``decode(encode(x))`` in one pass)."""
        return predict_numpy(self, x, batch_size)
