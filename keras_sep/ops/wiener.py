"""Multichannel Wiener filtering of separated spectrograms (Spleeter's ``--mwf``).

One expectation-maximisation step of the local Gaussian model (Duong,
Vincent and Gribonval 2010, in the simplified form of Nugraha, Liutkus and
Vincent 2016 that norbert implements and Spleeter calls): each source ``j``
has a power spectral density ``v_j(t, f)`` and a spatial covariance matrix
``R_j(f)`` shared by all frames, and its estimate is
``y_j = v_j R_j (Σ_k v_k R_k + δI)⁻¹ x``. Starting from ratio masks of the
network's magnitudes, ``v_j`` is the channel mean of ``|y_j|²`` and ``R_j``
the power-weighted average of ``y_j y_jᴴ`` over all frames of the song.

``R_j`` needs the whole song, so separation takes two passes over it:
:func:`statistics` sums what ``R_j`` needs chunk by chunk,
:func:`spatial_covariances` turns the sums into ``R_j`` and the scale, and
:func:`filter_spectra` separates each chunk with them. Memory stays that of
one chunk.

Any number of sources (Spleeter's 2, 4 or 5 stems) and channels.
Layout: spectra ``(chunks, channels, frames, bins)`` complex64, magnitude
estimates ``(sources, chunks, channels, frames, bins)`` float32. Everything
is float32 / complex64.
"""
import numpy as np
import tensorflow as tf

# norbert's default: the float32 machine epsilon.
EPSILON = float(np.finfo(np.float32).eps)


def softmask(estimates, spectrum, epsilon=EPSILON):
    """Ratio masks of magnitude estimates (exponent 1) applied to the mixture.

    Args:
        estimates: ``(sources, chunks, channels, frames, bins)`` float32.
        spectrum: ``(chunks, channels, frames, bins)`` complex64.

    Returns:
        ``(sources, chunks, channels, frames, bins)`` complex64:
        ``v_j / (ε + Σ_k v_k) · x``.

    Example:

    The masks share the mixture out, so the sources add up to it:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> spectrum = (rng.normal(size=(3, 2, 8, 5))
    ...             + 1j * rng.normal(size=(3, 2, 8, 5))).astype("complex64")
    >>> estimates = rng.uniform(size=(2, 3, 2, 8, 5)).astype("float32")
    >>> sources = softmask(estimates, spectrum)
    >>> sources.shape, sources.dtype.name
    (TensorShape([2, 3, 2, 8, 5]), 'complex64')
    >>> bool(np.allclose(np.sum(sources, axis=0), spectrum, atol=1e-4))
    True
    """
    share = estimates / (epsilon + tf.reduce_sum(estimates, axis=0, keepdims=True))
    return tf.complex(share, tf.zeros_like(share)) * spectrum[None]


def statistics(estimates, spectrum, weights=None, epsilon=EPSILON):
    """Pass one: this batch's contribution to the spatial covariances.

    Args:
        estimates, spectrum: as :func:`softmask`.
        weights: ``(chunks, frames)`` weight of each frame (cross-fade
            weights, which sum to one over the chunks that share a frame),
            or None for ones.

    Returns:
        ``(covariance, power, peak)``: ``Σ w y_j y_jᴴ`` ``(sources, bins,
        channels, channels)`` complex64, ``Σ w v_j`` ``(sources, bins)``
        float32 (sums over chunks and frames) and the largest ``|x|`` of
        ``spectrum`` (norbert takes it over all bins: pass the full spectrum,
        or take the peak where it is).

    Example:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> spectrum = (rng.normal(size=(3, 2, 8, 5))
    ...             + 1j * rng.normal(size=(3, 2, 8, 5))).astype("complex64")
    >>> estimates = rng.uniform(size=(2, 3, 2, 8, 5)).astype("float32")
    >>> covariance, power, peak = statistics(estimates, spectrum)
    >>> covariance.shape, power.shape
    (TensorShape([2, 5, 2, 2]), TensorShape([2, 5]))
    >>> bool(peak == np.max(np.abs(spectrum)))
    True
    """
    y = softmask(estimates, spectrum, epsilon)
    power = tf.reduce_mean(tf.math.real(y * tf.math.conj(y)), axis=2)  # (J, B, T, F)
    if weights is None:
        shape = tf.shape(spectrum)
        weights = tf.ones(tf.stack([shape[0], shape[2]]), tf.float32)
    weights = tf.cast(weights, tf.float32)
    weighted = y * tf.complex(weights, tf.zeros_like(weights))[None, :, None, :, None]
    covariance = tf.einsum("jbctf,jbdtf->jfcd", weighted, tf.math.conj(y))
    power = tf.einsum("jbtf,bt->jf", power, weights)
    return covariance, power, tf.reduce_max(tf.abs(spectrum))


def spatial_covariances(covariance, power, peak, epsilon=EPSILON):
    """The sums of :func:`statistics` over the whole song → ``(R, scale)``.

    As norbert, the song is scaled by ``scale = max(1, peak / 10)`` before
    the model is fitted, which sets the weight of the regularisation δ.

    Returns:
        ``R`` ``(sources, bins, channels, channels)`` complex64 and
        ``scale`` (float).

    Example:

    ``R_j`` is normalised by the channel mean of the power, so its trace is
    the number of channels in every bin; a song whose peak is 100 times
    larger is fitted at a larger scale:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> spectrum = (rng.normal(size=(3, 2, 8, 5))
    ...             + 1j * rng.normal(size=(3, 2, 8, 5))).astype("complex64")
    >>> estimates = rng.uniform(size=(2, 3, 2, 8, 5)).astype("float32")
    >>> spatial, scale = spatial_covariances(*statistics(estimates, spectrum))
    >>> spatial.shape, scale
    ((2, 5, 2, 2), 1.0)
    >>> np.round(np.trace(spatial, axis1=-2, axis2=-1).real, 4)
    array([[2., 2., 2., 2., 2.],
           [2., 2., 2., 2., 2.]], dtype=float32)
    >>> _, scale = spatial_covariances(*statistics(estimates, 100 * spectrum))
    >>> round(scale, 2)
    49.85
    """
    covariance = np.asarray(covariance, np.complex64)
    power = np.asarray(power, np.float32)
    scale = max(1.0, float(peak) / 10.0)
    square = np.float32(scale * scale)
    spatial = (covariance / square) / (epsilon + power / square)[..., None, None]
    return spatial.astype(np.complex64), scale


def _inverse(matrix):
    """Inverse of ``(..., n, n)`` complex matrices (closed form for n ≤ 2)."""
    n = matrix.shape[-1]
    if n == 1:
        return 1.0 / matrix
    if n == 2:
        a, b = matrix[..., 0, 0], matrix[..., 0, 1]
        c, d = matrix[..., 1, 0], matrix[..., 1, 1]
        inv_det = 1.0 / (a * d - b * c)
        rows = [tf.stack([d, -b], axis=-1), tf.stack([-c, a], axis=-1)]
        return tf.stack(rows, axis=-2) * inv_det[..., None, None]
    return tf.linalg.inv(matrix)


def filter_spectra(estimates, spectrum, spatial, scale, epsilon=EPSILON):
    """Pass two: the multichannel Wiener estimate of every source.

    Args:
        estimates, spectrum: as :func:`softmask`.
        spatial: ``R`` ``(sources, bins, channels, channels)`` complex64
            from :func:`spatial_covariances`.
        scale: the song's scale from :func:`spatial_covariances`.

    Returns:
        ``(sources, chunks, channels, frames, bins)`` complex64 source
        spectra; they sum to the mixture up to the regularisation.

    Example:

    Both passes over a "song" of three chunks, then the check that the
    filtered sources still add up to the mixture:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> spectrum = (rng.normal(size=(3, 2, 8, 5))
    ...             + 1j * rng.normal(size=(3, 2, 8, 5))).astype("complex64")
    >>> estimates = rng.uniform(size=(2, 3, 2, 8, 5)).astype("float32")
    >>> spatial, scale = spatial_covariances(*statistics(estimates, spectrum))
    >>> sources = filter_spectra(estimates, spectrum, spatial, scale)
    >>> sources.shape
    TensorShape([2, 3, 2, 8, 5])
    >>> error = float(np.max(np.abs(np.sum(sources, axis=0) - spectrum)))
    >>> print(f"error {error:.0e} < 1e-2: {error < 1e-2}")
    error ...e-0... < 1e-2: True
    """
    scale = tf.cast(scale, tf.float32)
    y = softmask(estimates, spectrum, epsilon) / tf.complex(scale, 0.0)
    x = spectrum / tf.complex(scale, 0.0)
    power = tf.reduce_mean(tf.math.real(y * tf.math.conj(y)), axis=2)  # (J, B, T, F)
    spatial = tf.cast(spatial, tf.complex64)
    channels = spatial.shape[-1]
    # Mixture covariance (B, T, F, C, C): Σ_j v_j R_j + √ε I.
    mixture = tf.einsum("jbtf,jfcd->btfcd", tf.complex(power, tf.zeros_like(power)), spatial)
    mixture += tf.complex(np.sqrt(epsilon).astype(np.float32) * tf.eye(channels), 0.0)
    # z = Cxx⁻¹ x, then y_j = v_j R_j z.
    z = tf.einsum("btfcd,bdtf->bctf", _inverse(mixture), x)
    y = tf.einsum("jfce,betf->jbctf", spatial, z) * tf.complex(power, tf.zeros_like(power))[:, :, None]
    return y * tf.complex(scale, 0.0)
