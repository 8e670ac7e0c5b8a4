"""Separation losses. Every loss computes in float32, whatever the policy."""
from keras_sep import _backend  # noqa: F401,I001  (first: refuses a Keras backend other than TensorFlow)
import keras
import tensorflow as tf

from keras_sep.ops import stft as stft_ops


def _float32(*tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


@keras.saving.register_keras_serializable(package="keras_sep")
class SpectralL1(keras.losses.Loss):
    """Jansson et al.'s ``||f(X) ⊙ X − Y||₁,₁``, as a mean over elements.

    ``y_pred`` is the masked magnitude a :class:`UNetSeparator` outputs and
    ``y_true`` the target magnitude, both ``(batch, frames, bins, channels)``.
    Per example: the mean absolute difference (the L1,1 norm divided by the
    number of elements, so the scale does not depend on the chunk size).

    Example:

    The first example is off by 1 and 3 (mean 2), the second is exact:

    >>> import numpy as np
    >>> y_true = np.zeros((2, 1, 2, 1), "float32")
    >>> y_pred = np.array([1.0, 3.0, 0.0, 0.0], "float32").reshape(2, 1, 2, 1)
    >>> float(SpectralL1()(y_true, y_pred))
    1.0
    """

    def __init__(self, name="spectral_l1", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true, y_pred = _float32(y_true, y_pred)
        return tf.reduce_mean(tf.abs(y_pred - y_true), axis=tf.range(1, tf.rank(y_pred)))


@keras.saving.register_keras_serializable(package="keras_sep")
class SpectralMSE(keras.losses.Loss):
    """Mean squared error between magnitudes, per example, in float32.

    Example:

    >>> import numpy as np
    >>> y_true = np.zeros((2, 1, 2, 1), "float32")
    >>> y_pred = np.array([1.0, 3.0, 0.0, 0.0], "float32").reshape(2, 1, 2, 1)
    >>> float(SpectralMSE()(y_true, y_pred))  # mean of (1 + 9) / 2 and 0
    2.5
    """

    def __init__(self, name="spectral_mse", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        y_true, y_pred = _float32(y_true, y_pred)
        return tf.reduce_mean(tf.square(y_pred - y_true), axis=tf.range(1, tf.rank(y_pred)))


@keras.saving.register_keras_serializable(package="keras_sep")
class MultiResolutionSTFTLoss(keras.losses.Loss):
    """Spectral convergence + log-magnitude L1 summed over several STFTs.

    For waveforms ``(batch, samples, channels)``; each resolution is
    ``(frame_length, frame_step)``. Following Yamamoto et al. (Parallel
    WaveGAN, 2020): ``||S − Ŝ||_F / ||S||_F + mean|log S − log Ŝ|``.

    Args:
        resolutions: list of ``(frame_length, frame_step)`` pairs.
        epsilon: floor inside the logarithm and the norms.

    Example:

    Halving a waveform costs a spectral convergence of 0.5 and a log
    distance of ``log 2`` at every resolution:

    >>> import math
    >>> import numpy as np
    >>> loss = MultiResolutionSTFTLoss(resolutions=[(64, 16), (32, 8)])
    >>> waveform = np.random.default_rng(0).normal(size=(1, 512, 1)).astype("float32")
    >>> round(float(loss(waveform, waveform)), 4)
    0.0
    >>> round(float(loss(waveform, 0.5 * waveform)), 4), round(0.5 + math.log(2), 4)
    (1.1931, 1.1931)
    """

    def __init__(
        self,
        resolutions=((2048, 512), (1024, 256), (512, 128)),
        epsilon=1e-7,
        name="multi_resolution_stft",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.resolutions = tuple(tuple(int(v) for v in r) for r in resolutions)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_true, y_pred = _float32(y_true, y_pred)
        total = 0.0
        for frame_length, frame_step in self.resolutions:
            true = tf.abs(stft_ops.stft(y_true, frame_length, frame_step, center=True))
            pred = tf.abs(stft_ops.stft(y_pred, frame_length, frame_step, center=True))
            axes = [1, 2, 3]
            convergence = tf.sqrt(tf.reduce_sum(tf.square(true - pred), axes) + self.epsilon) / tf.sqrt(
                tf.reduce_sum(tf.square(true), axes) + self.epsilon
            )
            log_l1 = tf.reduce_mean(
                tf.abs(tf.math.log(true + self.epsilon) - tf.math.log(pred + self.epsilon)), axes
            )
            total += convergence + log_l1
        return total / len(self.resolutions)

    def get_config(self):
        config = super().get_config()
        config.update(resolutions=[list(r) for r in self.resolutions], epsilon=self.epsilon)
        return config


LOSSES = {"l1": SpectralL1, "mse": SpectralMSE, "multi_resolution_stft": MultiResolutionSTFTLoss}


def get(name):
    """A loss instance by name: ``"l1"`` (Jansson), ``"mse"`` or ``"multi_resolution_stft"``.

    Example:

    >>> get("l1").name
    'spectral_l1'
    >>> get("huber")
    Traceback (most recent call last):
    ...
    ValueError: loss must be one of ['l1', 'mse', 'multi_resolution_stft'], got 'huber'
    """
    if isinstance(name, keras.losses.Loss):
        return name
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]()
