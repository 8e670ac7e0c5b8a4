"""Separation and synthesis losses. Every loss computes in float32, whatever the policy."""
from keras_sep import _backend  # noqa: F401,I001  (first: refuses a Keras backend other than TensorFlow)
import keras
import tensorflow as tf

from keras_sep.ops import stft as stft_ops


def _float32(*tensors):
    return [tf.cast(t, tf.float32) for t in tensors]


def _magnitudes(y_true, y_pred, frame_length, frame_step):
    """Centred Hann STFT magnitudes ``(batch, frames, bins, channels)`` of
    both waveforms, the one spectral front end of the STFT losses."""
    return [tf.abs(stft_ops.stft(y, frame_length, frame_step, center=True)) for y in (y_true, y_pred)]


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
            true, pred = _magnitudes(y_true, y_pred, frame_length, frame_step)
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


@keras.saving.register_keras_serializable(package="keras_sep")
class MultiScaleSpectralLoss(keras.losses.Loss):
    """DDSP's multi-scale spectral loss on waveforms ``(batch, samples, channels)``.

    For each FFT size ``n`` (Hann window of ``n`` samples, hop ``n * (1 -
    overlap)``): ``magnitude_weight * mean|S - Ŝ| + log_magnitude_weight *
    mean|log S - log Ŝ|``, with the magnitudes floored at ``epsilon`` inside
    the logarithm; the sizes' terms are summed (Engel et al., ICLR 2020).

    Args:
        fft_sizes: the window and FFT sizes, each at least 4.
        overlap: fraction of a window shared by neighbouring frames, in
            ``[0, 1)``.
        magnitude_weight, log_magnitude_weight: weights of the two terms.
        epsilon: floor of the magnitudes inside the logarithm.

    Example:

    >>> import numpy as np
    >>> loss = MultiScaleSpectralLoss(fft_sizes=(64, 32))
    >>> waveform = np.random.default_rng(0).normal(size=(2, 512, 1)).astype("float32")
    >>> float(loss(waveform, waveform))
    0.0
    >>> # halving: log 2 per size from the log term, plus half the mean magnitude
    >>> only_log = MultiScaleSpectralLoss(fft_sizes=(64, 32), magnitude_weight=0.0)
    >>> round(float(only_log(waveform, 0.5 * waveform)), 4), round(2 * float(np.log(2)), 4)
    (1.3863, 1.3863)
    """

    def __init__(
        self,
        fft_sizes=(2048, 1024, 512, 256, 128, 64),
        overlap=0.75,
        magnitude_weight=1.0,
        log_magnitude_weight=1.0,
        epsilon=1e-5,
        name="multi_scale_spectral",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not fft_sizes or any(int(n) != n or n < 4 for n in fft_sizes):
            raise ValueError(f"fft_sizes must be integers >= 4, got {fft_sizes!r}")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap must be in [0, 1), got {overlap!r}")
        self.fft_sizes = tuple(int(n) for n in fft_sizes)
        self.overlap = float(overlap)
        self.magnitude_weight = float(magnitude_weight)
        self.log_magnitude_weight = float(log_magnitude_weight)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        y_true, y_pred = _float32(y_true, y_pred)
        total = 0.0
        axes = [1, 2, 3]
        for size in self.fft_sizes:
            step = max(1, int(round(size * (1.0 - self.overlap))))
            true, pred = _magnitudes(y_true, y_pred, size, step)
            if self.magnitude_weight:
                total += self.magnitude_weight * tf.reduce_mean(tf.abs(true - pred), axes)
            if self.log_magnitude_weight:
                log_true = tf.math.log(tf.maximum(true, self.epsilon))
                log_pred = tf.math.log(tf.maximum(pred, self.epsilon))
                total += self.log_magnitude_weight * tf.reduce_mean(tf.abs(log_true - log_pred), axes)
        return total

    def get_config(self):
        config = super().get_config()
        config.update(
            fft_sizes=list(self.fft_sizes),
            overlap=self.overlap,
            magnitude_weight=self.magnitude_weight,
            log_magnitude_weight=self.log_magnitude_weight,
            epsilon=self.epsilon,
        )
        return config


LOSSES = {
    "l1": SpectralL1,
    "mse": SpectralMSE,
    "multi_resolution_stft": MultiResolutionSTFTLoss,
    "multi_scale_spectral": MultiScaleSpectralLoss,
}


def get(name):
    """A loss instance by name: ``"l1"`` (Jansson), ``"mse"``, ``"multi_resolution_stft"``
    or ``"multi_scale_spectral"`` (DDSP).

    Example:

    >>> get("l1").name
    'spectral_l1'
    >>> get("huber")
    Traceback (most recent call last):
    ...
    ValueError: loss must be one of ['l1', 'mse', 'multi_resolution_stft', 'multi_scale_spectral'], got 'huber'
    """
    if isinstance(name, keras.losses.Loss):
        return name
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]()
