"""Stops keras_sep's Keras code from running on a backend other than TensorFlow.

keras_sep's layers call TensorFlow ops directly, so under another Keras
backend they would fail later and obscurely. The Keras-using subpackages
import this module first; it sets nothing (the backend is the user's
choice, made before Keras is imported), it only refuses early and clearly.
"""
import os
import sys

_NEEDED = "keras_sep needs Keras on TensorFlow: set KERAS_BACKEND=tensorflow before Keras is imported"


def _check():
    # Checked before importing Keras too: Keras on a backend whose package
    # is missing would fail with its own, less helpful, error.
    if "keras" not in sys.modules:
        requested = os.environ.get("KERAS_BACKEND")
        if requested is not None and requested != "tensorflow":
            raise ImportError(f"{_NEEDED}; got KERAS_BACKEND={requested!r}")
    import keras

    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ImportError(f"{_NEEDED}; Keras runs on {backend!r}")


_check()
