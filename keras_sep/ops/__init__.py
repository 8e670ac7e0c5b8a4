"""Pure TensorFlow functions underneath the layers (no Keras state)."""
from keras_sep.ops import spectra  # noqa: E402,F401  (module: spectra.magnitude, spectra.to_complex, ...)
from keras_sep.ops import stft  # noqa: E402,F401  (module: stft.stft, stft.istft, ...)
from keras_sep.ops.conv_transpose import conv_transpose_reference  # noqa: E402,F401
from keras_sep.ops.pooling import max_pool_with_argmax  # noqa: E402,F401
from keras_sep.ops.unpooling import max_unpool  # noqa: E402,F401
from keras_sep.ops.upsampling import bed_of_nails_upsample  # noqa: E402,F401
from keras_sep.ops.griffin_lim import griffin_lim  # noqa: E402,F401  (the function; reconstruct_phase etc.: from keras_sep.ops.griffin_lim import ...)
