"""Transposed convolution in numpy, written as the four steps of the lecture.

A teaching reference, not a building block: it is plain numpy (unlike the
TensorFlow ops beside it), slow, and made to be read next to
``keras.layers.Conv2DTranspose`` and checked against it in the tests.
"""
import numpy as np


def _pair(value, name):
    """``value`` as a pair of non-negative ints (rows, columns)."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(v) != v or v < 0 for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints >= 0, got {value!r}")
    return int(pair[0]), int(pair[1])


def conv_transpose_reference(x, kernel, stride=1, padding=0):
    """2-D transposed convolution by dilation, padding, cropping, correlation.

    The four steps, for each spatial axis with stride ``s``, kernel size
    ``k`` and padding ``p``:

    1. insert ``s - 1`` zeros between neighbouring input pixels;
    2. pad ``k - 1`` zeros on every side;
    3. crop ``p`` pixels from every side;
    4. cross-correlate (``"valid"``) with the kernel rotated by 180°.

    The output has ``(n - 1) * s + k - 2 * p`` pixels along an axis of ``n``.
    This equals scattering every input pixel, scaled by the kernel, into the
    output: ``out[s*i + a - p, s*j + b - p] += x[i, j] * kernel[a, b]``,
    which is what ``keras.layers.Conv2DTranspose`` with ``padding="valid"``
    computes (Keras pads ``s - k`` zero rows at the end when ``k < s``).

    Args:
        x: input, ``(height, width)`` for one channel or
            ``(height, width, in_channels)``.
        kernel: ``(kh, kw)`` for one channel or
            ``(kh, kw, out_channels, in_channels)``, the layout of
            ``Conv2DTranspose.kernel``.
        stride: int or ``(row, column)`` pair, >= 1.
        padding: int or ``(row, column)`` pair cropped from both sides of
            each axis; at most ``k - 1``.

    Returns:
        float64 array ``(out_height, out_width)`` for one channel, else
        ``(out_height, out_width, out_channels)``.

    Example:

    >>> conv_transpose_reference([[1, 2], [3, 4]], [[-1, 1], [-2, 2]], stride=2)
    array([[-1.,  1., -2.,  2.],
           [-2.,  2., -4.,  4.],
           [-3.,  3., -4.,  4.],
           [-6.,  6., -8.,  8.]])

    References:
        V. Dumoulin, F. Visin, "A guide to convolution arithmetic for deep
        learning", arXiv:1603.07285, 2016.
    """
    x = np.asarray(x, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    single_channel = x.ndim == 2
    if single_channel != (kernel.ndim == 2) or x.ndim not in (2, 3):
        raise ValueError(
            "x and kernel must be (H, W) and (kh, kw), or (H, W, Cin) and "
            f"(kh, kw, Cout, Cin); got shapes {x.shape} and {kernel.shape}"
        )
    if single_channel:
        x = x[:, :, None]
        kernel = kernel[:, :, None, None]
    if kernel.shape[3] != x.shape[2]:
        raise ValueError(
            f"kernel has {kernel.shape[3]} input channels, x has {x.shape[2]}"
        )
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    kh, kw = kernel.shape[:2]
    if sh < 1 or sw < 1:
        raise ValueError(f"stride must be >= 1, got {stride!r}")
    if ph > kh - 1 or pw > kw - 1:
        raise ValueError(f"padding must be at most kernel_size - 1, got {padding!r}")
    height, width, channels = x.shape

    # (1) Insert stride - 1 zeros between pixels.
    dilated = np.zeros(((height - 1) * sh + 1, (width - 1) * sw + 1, channels))
    dilated[::sh, ::sw] = x
    # (2) Pad kernel - 1 zeros all round.
    padded = np.pad(dilated, ((kh - 1, kh - 1), (kw - 1, kw - 1), (0, 0)))
    # (3) Crop `padding` from each side.
    cropped = padded[ph : padded.shape[0] - ph, pw : padded.shape[1] - pw]
    # (4) Valid cross-correlation with the kernel rotated by 180 degrees.
    rotated = kernel[::-1, ::-1]
    windows = np.lib.stride_tricks.sliding_window_view(cropped, (kh, kw), axis=(0, 1))
    # windows: (out_h, out_w, in_channels, kh, kw)
    out = np.einsum("ijcab,aboc->ijo", windows, rotated)
    return out[:, :, 0] if single_channel else out
