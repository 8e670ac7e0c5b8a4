"""Complex spectrograms and their real views (float32 / complex64).

The magnitude a network reads, the complex spectrum rebuilt from a
magnitude and a phase, and the real/imaginary channel pairs that let a
complex spectrogram pass through real-valued Keras layers. The transforms
themselves are in :mod:`keras_sep.ops.stft`.
"""
import tensorflow as tf


def magnitude(spectrogram, power=1.0):
    """``|spectrogram| ** power`` as float32 (``power=2`` gives the power spectrum)."""
    spectrogram = tf.cast(spectrogram, tf.complex64)
    if power == 2:
        return tf.square(tf.math.real(spectrogram)) + tf.square(tf.math.imag(spectrogram))
    absolute = tf.abs(spectrogram)
    return absolute if power == 1 else tf.pow(absolute, power)


def to_complex(magnitude, phase):
    """complex64 ``magnitude * exp(i * phase)`` from two real tensors."""
    magnitude = tf.cast(magnitude, tf.float32)
    phase = tf.cast(phase, tf.float32)
    return tf.complex(magnitude * tf.cos(phase), magnitude * tf.sin(phase))


def to_real_imag(spectrogram):
    """complex ``(..., channels)`` to float32 ``(..., 2 * channels)``.

    Channel ``2c`` holds the real part and ``2c + 1`` the imaginary part of
    input channel ``c``.

    Example:

    >>> import numpy as np
    >>> parts = to_real_imag(np.array([[1 + 2j, 3 - 4j]], "complex64"))
    >>> parts.numpy()
    array([[ 1.,  2.,  3., -4.]], dtype=float32)
    >>> from_real_imag(parts).numpy()
    array([[1.+2.j, 3.-4.j]], dtype=complex64)
    """
    spectrogram = tf.cast(spectrogram, tf.complex64)
    parts = tf.stack([tf.math.real(spectrogram), tf.math.imag(spectrogram)], axis=-1)
    shape = tf.shape(spectrogram)
    result = tf.reshape(parts, tf.concat([shape[:-1], [2 * shape[-1]]], axis=0))
    channels = spectrogram.shape[-1]
    result.set_shape(spectrogram.shape[:-1] + [None if channels is None else 2 * channels])
    return result


def from_real_imag(parts):
    """Inverse of :func:`to_real_imag`: float ``(..., 2 * channels)`` to complex64."""
    parts = tf.cast(parts, tf.float32)
    shape = tf.shape(parts)
    pairs = tf.reshape(parts, tf.concat([shape[:-1], [shape[-1] // 2, 2]], axis=0))
    channels = parts.shape[-1]
    pairs.set_shape(parts.shape[:-1] + [None if channels is None else channels // 2, 2])
    return tf.complex(pairs[..., 0], pairs[..., 1])
