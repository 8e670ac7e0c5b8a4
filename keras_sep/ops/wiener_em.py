"""Multichannel Wiener filtering with expectation-maximisation iterations.

The local Gaussian model of :mod:`keras_sep.ops.wiener` (Duong, Vincent and
Gribonval 2010; Nugraha, Liutkus and Vincent 2016), fitted on a whole
excerpt at once and refined for any number of iterations, as norbert's
``wiener()`` / ``expectation_maximization()`` and Open-Unmix's
``openunmix.filtering`` compute it. Each iteration re-estimates, from the
current source estimates ``y_j``:

* the power spectral density ``v_j(t, f)``, the channel mean of ``|y_j|²``;
* the spatial covariance ``R_j(f) = Σ_t y_j y_jᴴ / (ε + Σ_t v_j)``;

and separates again with ``y_j = v_j R_j (Σ_k v_k R_k + √ε I)⁻¹ x``.

Unlike the two-pass streaming filter of :mod:`keras_sep.ops.wiener`, which
holds one chunk at a time and fits ``R_j`` on the whole song, each batch item
here is one excerpt with its own model (Open-Unmix filters windows of 300
frames independently: :func:`windowed_wiener`).

Layout: norbert's, with a batch axis in front. The mixture spectrum is
``(batch, frames, bins, channels)`` complex64, the source magnitudes
``(batch, frames, bins, channels or 1, sources)`` float32 and the source
spectra ``(batch, frames, bins, channels, sources)`` complex64. Batch, frames
and bins may be dynamic; channels must be known (it picks the matrix
inverse). Everything runs in float32 / complex64 whatever comes in.
"""
import numpy as np
import tensorflow as tf

from keras_sep.ops.wiener import EPSILON, _inverse


def _complex(real):
    return tf.complex(real, tf.zeros_like(real))


def _real_dtype(dtype):
    return tf.float64 if dtype == tf.complex128 else tf.float32


def local_gaussian_model(y, epsilon=EPSILON):
    """Power spectral densities and spatial covariances of source estimates.

    Args:
        y: ``(batch, frames, bins, channels, sources)`` complex64.

    Returns:
        ``v`` ``(batch, frames, bins, sources)`` float32 and ``R`` ``(batch,
        bins, sources, channels, channels)`` complex64.
    """
    v = tf.reduce_mean(tf.math.real(y * tf.math.conj(y)), axis=3)
    covariance = tf.einsum("btfcj,btfdj->bfjcd", y, tf.math.conj(y))
    weight = epsilon + tf.reduce_sum(v, axis=1)  # (batch, bins, sources)
    return v, covariance / _complex(weight)[..., None, None]


def expectation_maximization(y, spectrum, iterations=1, epsilon=EPSILON, dtype=tf.complex64):
    """Refine source spectra by ``iterations`` EM steps (norbert's algorithm).

    Args:
        y: initial source spectra ``(batch, frames, bins, channels,
            sources)`` complex64.
        spectrum: the mixture ``(batch, frames, bins, channels)`` complex64.
        iterations: number of steps (a Python int); 0 returns ``y``.
        epsilon: the regularisation: ``√ε`` is added to the diagonal of the
            mixture covariance and ``ε`` to the weight of ``R_j``.
        dtype: the complex dtype of the arithmetic: complex64 (as
            Open-Unmix computes) or complex128 (as norbert does). Where one
            source dominates a bin and is panned to a single direction,
            ``Σ v_j R_j`` is nearly singular and complex64 keeps only about
            45 dB of the float64 result; complex128 costs about 2.5× the
            time of the filter on a CPU.

    Returns:
        The refined ``(batch, frames, bins, channels, sources)`` in ``dtype``.
    """
    if int(iterations) != iterations or iterations < 0:
        raise ValueError(f"iterations must be a non-negative integer, got {iterations!r}")
    y = tf.cast(y, dtype)
    x = tf.cast(spectrum, dtype)
    channels = x.shape[-1]
    if channels is None:
        raise ValueError(f"the channel axis of the spectrum must be known, got shape {x.shape}")
    regularization = _complex(np.sqrt(epsilon) * tf.eye(channels, dtype=_real_dtype(dtype)))
    for _ in range(int(iterations)):
        v, spatial = local_gaussian_model(y, epsilon)
        mixture = tf.einsum("btfj,bfjcd->btfcd", _complex(v), spatial) + regularization
        # The scalar case as norbert: ε more on top of the regularisation.
        inverse = 1.0 / (mixture + epsilon) if channels == 1 else _inverse(mixture)
        z = tf.einsum("btfcd,btfd->btfc", inverse, x)
        y = tf.einsum("bfjce,btfe->btfcj", spatial, z) * _complex(v)[:, :, :, None, :]
    return y


def initial_estimates(estimates, spectrum, softmask=True, epsilon=EPSILON):
    """Source spectra from magnitudes, before any EM step.

    ``softmask=True`` shares the mixture out by ratio masks ``v_j / (ε +
    Σ_k v_k) · x`` (norbert's default); ``False`` gives each magnitude the
    mixture's phase (Open-Unmix's default), phase 0 where the mixture is 0.

    Args:
        estimates: ``(batch, frames, bins, channels or 1, sources)``
            float32, non-negative.
        spectrum: ``(batch, frames, bins, channels)`` complex64.

    Returns:
        ``(batch, frames, bins, channels, sources)`` complex64.
    """
    estimates = tf.cast(estimates, tf.float32)
    x = tf.cast(spectrum, tf.complex64)[..., None]
    if softmask:
        share = estimates / (epsilon + tf.reduce_sum(estimates, axis=-1, keepdims=True))
        return _complex(share) * x
    magnitude = tf.abs(x)
    silent = tf.equal(magnitude, 0.0)
    phase = tf.where(silent, tf.ones_like(x), x / _complex(tf.where(silent, tf.ones_like(magnitude), magnitude)))
    return _complex(estimates) * phase


def wiener(
    estimates,
    spectrum,
    iterations=1,
    softmask=True,
    residual=False,
    epsilon=EPSILON,
    scale_factor=10.0,
    dtype=tf.complex64,
):
    """Wiener separation of a mixture from source magnitudes (norbert's
    ``wiener()``, with Open-Unmix's ``residual``).

    The initial estimates (:func:`initial_estimates`) are refined by
    :func:`expectation_maximization` on the mixture scaled down by
    ``max(1, max|x| / scale_factor)`` (per batch item), which sets the
    weight of the regularisation as norbert and Open-Unmix do.

    Args:
        estimates: source magnitudes ``(batch, frames, bins, channels or 1,
            sources)`` float32.
        spectrum: the mixture ``(batch, frames, bins, channels)`` complex64.
        iterations: EM steps (Python int); 0 = the initial estimates only.
        softmask: how the initial estimates are made (ratio masks, or the
            magnitudes with the mixture's phase).
        residual: append one more source, the mixture less the sum of the
            others, before the EM steps.
        epsilon: regularisation (norbert: float32's machine epsilon;
            Open-Unmix: 1e-10).
        scale_factor: see above.
        dtype: the arithmetic of the EM steps
            (:func:`expectation_maximization`); the result is complex64.

    Returns:
        ``(batch, frames, bins, channels, sources [+ 1])`` complex64.

    Example:

    Two sources of a stereo mixture, with one EM step; the estimates add up
    to the mixture up to the regularisation:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = (rng.normal(size=(1, 20, 9, 2))
    ...      + 1j * rng.normal(size=(1, 20, 9, 2))).astype("complex64")
    >>> v = rng.uniform(size=(1, 20, 9, 2, 2)).astype("float32")
    >>> y = wiener(v, x, iterations=1)
    >>> y.shape, y.dtype.name
    (TensorShape([1, 20, 9, 2, 2]), 'complex64')
    >>> bool(np.max(np.abs(np.sum(y, axis=-1) - x)) < 1e-2)
    True
    """
    x = tf.cast(spectrum, tf.complex64)
    y = initial_estimates(estimates, x, softmask, epsilon)
    if residual:
        y = tf.concat([y, x[..., None] - tf.reduce_sum(y, axis=-1, keepdims=True)], axis=-1)
    if not iterations:
        return y
    peak = tf.reduce_max(tf.abs(x), axis=[1, 2, 3])
    scale = _complex(tf.maximum(1.0, peak / scale_factor))[:, None, None, None]
    y = expectation_maximization(y / scale[..., None], x / scale, iterations, epsilon, dtype)
    return tf.cast(y, tf.complex64) * scale[..., None]


def windowed_wiener(estimates, spectrum, window=300, start=0, **kwargs):
    """:func:`wiener` on consecutive windows of ``window`` frames, each with
    its own model, as ``openunmix.Separator`` filters a song.

    The frames are zero-padded to whole windows, which are filtered one
    after the other: frames of zeros change neither a window's covariances
    nor its scale, so this equals filtering each window on its own.

    Args:
        estimates, spectrum: as :func:`wiener`.
        window: frames per window, or None for the whole excerpt.
        start: how far into its window the first frame is (0 to
            ``window - 1``; a scalar tensor too): the first window is that
            much shorter, so that a chunk of a song is cut into the song's
            windows.
        **kwargs: the other arguments of :func:`wiener`.

    Returns:
        As :func:`wiener`.
    """
    if window is None:
        return wiener(estimates, spectrum, **kwargs)
    if int(window) != window or window <= 0:
        raise ValueError(f"window must be a positive integer or None, got {window!r}")
    estimates = tf.cast(estimates, tf.float32)
    spectrum = tf.cast(spectrum, tf.complex64)
    shape = tf.shape(spectrum)
    batch, frames = shape[0], shape[1]
    start = tf.cast(start, tf.int32)
    count = (start + frames + window - 1) // window
    pad = count * window - frames - start

    def windows(tensor):
        rows = tf.concat([[[0, 0], tf.stack([start, pad])], tf.zeros([tensor.shape.rank - 2, 2], tf.int32)], 0)
        padded = tf.pad(tensor, rows)
        tail = tf.shape(padded)[2:]
        stacked = tf.reshape(padded, tf.concat([[batch * count, window], tail], 0))
        # The reshape forgets the channel count, which picks the inverse.
        return tf.ensure_shape(stacked, [None, window] + tensor.shape[2:].as_list())

    # One window at a time, as upstream: the filter's temporaries are
    # several times the spectrum's size, so memory stays that of a window.
    y = tf.map_fn(
        lambda pair: wiener(pair[0][None], pair[1][None], **kwargs)[0],
        (windows(estimates), windows(spectrum)),
        fn_output_signature=tf.complex64,
        parallel_iterations=1,
    )
    tail = tf.shape(y)[2:]
    y = tf.reshape(y, tf.concat([[batch, count * window], tail], 0))
    return tf.ensure_shape(y[:, start : start + frames], [None, None] + spectrum.shape[2:].as_list() + [None])
