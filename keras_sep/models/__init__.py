"""Model builders made of keras_sep layers."""
import keras_sep  # noqa: F401  (sets KERAS_BACKEND before keras is imported)
from keras_sep.models.unet_separator import UNetSeparator, unet_separator  # noqa: E402,F401
from keras_sep.models.waveform_separator import WaveformSeparator  # noqa: E402,F401
