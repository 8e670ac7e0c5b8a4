"""Keras 3 layers of keras_sep, one public class per module."""
import keras_sep  # noqa: F401  (sets KERAS_BACKEND before keras is imported)
