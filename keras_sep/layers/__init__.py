"""Keras 3 layers of keras_sep, one public class per module."""
from keras_sep import _backend  # noqa: F401  (refuses a Keras backend other than TensorFlow)
from keras_sep.layers.stft import STFT  # noqa: E402
from keras_sep.layers.istft import ISTFT  # noqa: E402
from keras_sep.layers.magnitude import Magnitude  # noqa: E402
from keras_sep.layers.griffin_lim import GriffinLim  # noqa: E402,F401
from keras_sep.layers.tied_dense import TiedDense  # noqa: E402
from keras_sep.layers.conv_block import Conv2DBlock  # noqa: E402
from keras_sep.layers.conv_transpose_block import Conv2DTransposeBlock  # noqa: E402
from keras_sep.layers.max_pooling_argmax import MaxPoolingWithArgmax2D  # noqa: E402
from keras_sep.layers.max_unpooling import MaxUnpooling2D  # noqa: E402
from keras_sep.layers.upsampling import Upsampling2D  # noqa: E402
from keras_sep.layers.additive_gaussian_noise import AdditiveGaussianNoise  # noqa: E402,F401
from keras_sep.layers.masking_noise import MaskingNoise  # noqa: E402,F401
from keras_sep.layers.salt_and_pepper_noise import SaltAndPepperNoise  # noqa: E402,F401
from keras_sep.layers.cross_occlusion import CrossOcclusion  # noqa: E402,F401
from keras_sep.layers.harmonic_synth import HarmonicSynth  # noqa: E402,F401
from keras_sep.layers.filtered_noise import FilteredNoise  # noqa: E402,F401
from keras_sep.layers.reverb import Reverb  # noqa: E402,F401
from keras_sep.layers.mfcc import MFCC  # noqa: E402,F401
