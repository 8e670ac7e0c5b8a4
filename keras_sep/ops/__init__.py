"""Pure TensorFlow functions underneath the layers (no Keras state)."""
from keras_sep.ops import stft  # noqa: E402,F401  (module: stft.stft, stft.istft, ...)
from keras_sep.ops.conv_transpose import conv_transpose_reference  # noqa: E402,F401
from keras_sep.ops.unpooling import bed_of_nails_upsample, max_pool_with_argmax, max_unpool  # noqa: E402,F401
from keras_sep.ops.griffin_lim import griffin_lim  # noqa: E402,F401  (the function; reconstruct_phase etc.: from keras_sep.ops.griffin_lim import ...)
