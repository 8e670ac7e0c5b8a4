"""Soft masks for spectrogram separation (pure TensorFlow, always float32)."""
import tensorflow as tf

MASK_EXTENSIONS = ("zeros", "average")


def ratio_masks(estimates, exponent=2.0, epsilon=1e-10):
    """Ratio masks across sources: ``(e_i^p + eps/n) / (sum_j e_j^p + eps)``.

    With ``p = 2`` these are the Wiener-like masks Spleeter uses; they are in
    [0, 1] and sum to one over the sources wherever the estimates are defined.

    Args:
        estimates: list of n non-negative tensors of one shape, e.g.
            magnitude estimates ``(batch, frames, bins, channels)``.
        exponent: separation exponent ``p``.
        epsilon: keeps silent bins defined (each source gets ``1/n`` there).

    Returns:
        List of n float32 masks, same shape as the estimates.

    Example:

    Magnitudes 3 and 4 give the shares 9/25 and 16/25; a bin where both
    estimates are silent is split evenly:

    >>> import numpy as np
    >>> vocals, accompaniment = ratio_masks([np.array([3.0, 0.0]), np.array([4.0, 0.0])])
    >>> vocals.numpy(), accompaniment.numpy()
    (array([0.36, 0.5 ], dtype=float32), array([0.64, 0.5 ], dtype=float32))
    >>> (vocals + accompaniment).numpy()
    array([1., 1.], dtype=float32)
    """
    estimates = [tf.cast(e, tf.float32) for e in estimates]
    # tf.pow is exp(p·log(x)) on CPU; squaring is 5× cheaper and exact.
    if exponent == 2:
        powered = [tf.square(e) for e in estimates]
    elif exponent == 1:
        powered = estimates
    else:
        powered = [tf.pow(e, exponent) for e in estimates]
    total = tf.add_n(powered) + epsilon
    share = epsilon / len(powered)
    return [(p + share) / total for p in powered]


def extend_mask(mask, total_bins, mode="zeros"):
    """Extend a mask computed below a frequency cutoff to all FFT bins.

    Args:
        mask: ``(batch, frames, bins, channels)`` for the lowest ``bins`` bins.
        total_bins: bins of the full spectrogram (``fft_length // 2 + 1``).
        mode: ``"zeros"`` (nothing above the cutoff, as Spleeter does by
            default) or ``"average"`` (each frame's mean mask over the bins
            below the cutoff).

    Returns:
        ``(batch, frames, total_bins, channels)``.

    Example:

    >>> import numpy as np
    >>> mask = np.array([0.2, 0.4, 0.9], "float32").reshape(1, 1, 3, 1)
    >>> extend_mask(mask, 5).numpy().ravel()
    array([0.2, 0.4, 0.9, 0. , 0. ], dtype=float32)
    >>> extend_mask(mask, 5, mode="average").numpy().ravel()
    array([0.2, 0.4, 0.9, 0.5, 0.5], dtype=float32)
    """
    if mode not in MASK_EXTENSIONS:
        raise ValueError(f"mask extension must be one of {MASK_EXTENSIONS}, got {mode!r}")
    missing = total_bins - tf.shape(mask)[2]
    shape = tf.shape(mask)
    if mode == "zeros":
        extension = tf.zeros(tf.stack([shape[0], shape[1], missing, shape[3]]), mask.dtype)
    else:
        mean = tf.reduce_mean(mask, axis=2, keepdims=True)
        extension = tf.tile(mean, tf.stack([1, 1, missing, 1]))
    return tf.concat([mask, extension], axis=2)
