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
and bins may be dynamic; channels must be known (it picks the form of the
EM steps: entry by entry for mono and stereo, matrices otherwise).
Everything runs in float32 / complex64 whatever comes in (complex128 on
request), with XLA on request (``jit_compile``).
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

    Mono and stereo mixtures take an element-wise form of the same
    arithmetic (:func:`_stereo_steps`, :func:`_mono_steps`); other channel
    counts the matrix form (:func:`_matrix_steps`).

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
    if not iterations:
        return y
    steps = {1: _mono_steps, 2: _stereo_steps}.get(channels, _matrix_steps)
    return steps(y, x, int(iterations), epsilon)


def _matrix_steps(y, x, iterations, epsilon):
    """EM steps with ``R_j`` and ``Σ v_j R_j`` as matrices (any channels)."""
    channels = x.shape[-1]
    regularization = _complex(np.sqrt(epsilon) * tf.eye(channels, dtype=_real_dtype(x.dtype)))
    for _ in range(iterations):
        v, spatial = local_gaussian_model(y, epsilon)
        mixture = tf.einsum("btfj,bfjcd->btfcd", _complex(v), spatial) + regularization
        # The scalar case as norbert: ε more on top of the regularisation.
        inverse = 1.0 / (mixture + epsilon) if channels == 1 else _inverse(mixture)
        z = tf.einsum("btfcd,btfd->btfc", inverse, x)
        y = tf.einsum("bfjce,btfe->btfcj", spatial, z) * _complex(v)[:, :, :, None, :]
    return y


def _stereo_steps(y, x, iterations, epsilon):
    """:func:`_matrix_steps` for two channels, entry by entry.

    The contracted axes (2 channels, a few sources) are far too small for
    matrix products: TensorFlow would transpose every operand for them.
    ``R_j`` is Hermitian with a real diagonal, so it is kept as ``r00``,
    ``r11`` (real) and ``r01``, the mixture covariance likewise, and its
    inverse is the closed form ``[[c11, -c01], [-c01*, c00]] / det``.
    """
    sqrt_eps = float(np.sqrt(epsilon))
    y0, y1 = y[:, :, :, 0], y[:, :, :, 1]  # (batch, frames, bins, sources)
    x0, x1 = x[:, :, :, 0:1], x[:, :, :, 1:2]
    for _ in range(iterations):
        p0, p1 = _power(y0), _power(y1)
        v = 0.5 * (p0 + p1)
        weight = epsilon + tf.reduce_sum(v, axis=1, keepdims=True)
        r00 = tf.reduce_sum(p0, axis=1, keepdims=True) / weight
        r11 = tf.reduce_sum(p1, axis=1, keepdims=True) / weight
        r01 = tf.reduce_sum(y0 * tf.math.conj(y1), axis=1, keepdims=True) / _complex(weight)
        c00 = tf.reduce_sum(v * r00, axis=-1, keepdims=True) + sqrt_eps
        c11 = tf.reduce_sum(v * r11, axis=-1, keepdims=True) + sqrt_eps
        v = _complex(v)
        c01 = tf.reduce_sum(v * r01, axis=-1, keepdims=True)
        inv_det = _complex(1.0 / (c00 * c11 - _power(c01)))
        z0 = (_complex(c11) * x0 - c01 * x1) * inv_det
        z1 = (_complex(c00) * x1 - tf.math.conj(c01) * x0) * inv_det
        y0 = v * (_complex(r00) * z0 + r01 * z1)
        y1 = v * (tf.math.conj(r01) * z0 + _complex(r11) * z1)
    return tf.stack([y0, y1], axis=3)


def _mono_steps(y, x, iterations, epsilon):
    """:func:`_matrix_steps` for one channel: every matrix is a scalar."""
    y = y[:, :, :, 0]
    for _ in range(iterations):
        v = _power(y)
        spatial = tf.reduce_sum(v, axis=1, keepdims=True) / (epsilon + tf.reduce_sum(v, axis=1, keepdims=True))
        # ε on top of the regularisation, as norbert's scalar case.
        mixture = tf.reduce_sum(v * spatial, axis=-1, keepdims=True) + float(np.sqrt(epsilon)) + epsilon
        y = _complex(v * spatial / mixture) * x
    return y[:, :, :, None]


def _power(z):
    return tf.math.real(z * tf.math.conj(z))


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
    jit_compile=False,
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
        jit_compile: compute with XLA: about 3x less CPU time for stereo,
            but the graph then needs XLA wherever it runs, which not every
            TF Serving build has. The EM steps of more than two channels run
            without it.

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
    if not iterations:
        return (_compiled_start if jit_compile else _start)(estimates, x, softmask, residual, epsilon)
    y, x, scale = (_compiled_scaled_start if jit_compile else _scaled_start)(
        estimates, x, softmask, residual, epsilon, scale_factor
    )
    # XLA has no general matrix inverse: more channels than two take the
    # steps in plain TensorFlow.
    steps = _compiled_rescaled_steps if jit_compile and x.shape[-1] in (1, 2) else _rescaled_steps
    return steps(y, x, scale, iterations, epsilon, dtype)


def _start(estimates, x, softmask, residual, epsilon):
    y = initial_estimates(estimates, x, softmask, epsilon)
    if residual:
        y = tf.concat([y, x[..., None] - tf.reduce_sum(y, axis=-1, keepdims=True)], axis=-1)
    return y


def _scaled_start(estimates, x, softmask, residual, epsilon, scale_factor):
    """The initial estimates and the mixture divided by the scale, and the
    scale ``(batch, 1, 1, 1)``."""
    y = _start(estimates, x, softmask, residual, epsilon)
    peak = tf.reduce_max(tf.abs(x), axis=[1, 2, 3])
    scale = tf.maximum(1.0, peak / scale_factor)[:, None, None, None]
    # A product, not a complex division, which costs several times more.
    inverse = _complex(1.0 / scale)
    return y * inverse[..., None], x * inverse, scale


def _rescaled_steps(y, x, scale, iterations, epsilon, dtype):
    """The EM steps on the scaled-down excerpt, scaled back up, complex64."""
    y = tf.cast(expectation_maximization(y, x, iterations, epsilon, dtype), tf.complex64)
    return y * _complex(scale)[..., None]


# The initial estimates and the EM steps as separate XLA computations:
# compiled as one, the estimates' square roots and divisions are fused into
# (so recomputed by) every pass of the EM step, which then takes 1.7x the
# time of the two apart.
_compiled_start = tf.function(_start, jit_compile=True, autograph=False)
_compiled_scaled_start = tf.function(_scaled_start, jit_compile=True, autograph=False)
_compiled_rescaled_steps = tf.function(_rescaled_steps, jit_compile=True, autograph=False)


def windowed_wiener(estimates, spectrum, window=300, start=0, jit_compile=False, **kwargs):
    """:func:`wiener` on consecutive windows of ``window`` frames, each with
    its own model, as ``openunmix.Separator`` filters a song.

    Args:
        estimates, spectrum: as :func:`wiener`.
        window: frames per window, or None for the whole excerpt.
        start: how far into its window the first frame is (0 to
            ``window - 1``; a scalar tensor too): the first window is that
            much shorter, so that a chunk of a song is cut into the song's
            windows.
        jit_compile: filter with XLA (see :func:`wiener`). Every window is
            then zero-padded to ``window`` frames, so that one compiled shape
            serves them all: frames of zeros change neither a window's
            covariances nor its scale.
        **kwargs: the other arguments of :func:`wiener`.

    Returns:
        As :func:`wiener`.
    """
    if window is None:
        return wiener(estimates, spectrum, jit_compile=jit_compile, **kwargs)
    if int(window) != window or window <= 0:
        raise ValueError(f"window must be a positive integer or None, got {window!r}")
    window = int(window)
    estimates = tf.cast(estimates, tf.float32)
    spectrum = tf.cast(spectrum, tf.complex64)
    shape = tf.shape(spectrum)
    batch, frames = shape[0], shape[1]
    start = tf.cast(start, tf.int32)
    count = (start + frames + window - 1) // window
    bins_and_channels = spectrum.shape[2:].as_list()

    # One window at a time, as upstream: the filter's temporaries are
    # several times the spectrum's size, so memory stays that of a window.
    # Windows are cut from the inputs and their results gathered in one
    # concatenation, without padded copies of the whole excerpt.
    def step(index, parts):
        item, first = index // count, (index % count) * window - start
        low, high = tf.maximum(first, 0), tf.minimum(first + window, frames)
        pieces = estimates[item : item + 1, low:high], spectrum[item : item + 1, low:high]
        if jit_compile:
            pieces = [_pad_frames(piece, window) for piece in pieces]
        y = wiener(*pieces, jit_compile=jit_compile, **kwargs)[0, : high - low]
        return index + 1, parts.write(index, y)

    parts = tf.TensorArray(
        tf.complex64, size=batch * count, infer_shape=False, element_shape=[None] + bins_and_channels + [None]
    )
    _, parts = tf.while_loop(lambda index, _: index < batch * count, step, (0, parts), parallel_iterations=1)
    y = parts.concat()
    y = tf.reshape(y, tf.concat([[batch, frames], tf.shape(y)[1:]], 0))
    return tf.ensure_shape(y, [None, None] + bins_and_channels + [None])


def _pad_frames(tensor, frames):
    """``tensor`` with frames (axis 1) of zeros appended up to ``frames``."""
    rows = [[0, 0], [0, frames - tf.shape(tensor)[1]]] + [[0, 0]] * (tensor.shape.rank - 2)
    return tf.ensure_shape(tf.pad(tensor, rows), tensor.shape[:1] + [frames] + tensor.shape[2:])

