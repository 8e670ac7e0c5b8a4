"""Model builders made of keras_sep layers."""
import keras_sep  # noqa: F401  (sets KERAS_BACKEND before keras is imported)
