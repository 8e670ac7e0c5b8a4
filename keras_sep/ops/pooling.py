"""Max pooling that remembers where each maximum was, and the pooling geometry.

Pure TensorFlow functions on channels-last 4-D tensors
``(batch, height, width, channels)``, any of whose axes may be unknown until
run time:

- :func:`max_pool_with_argmax`: max pooling plus the flat position of each
  maximum inside its example (the indices :func:`keras_sep.ops.unpooling.max_unpool`
  puts values back with);
- the lengths pooling gives and takes (:func:`pooled_length`,
  :func:`unpooled_length`) and the argument checks the pooling layers share.

Why not ``tf.nn.max_pool_with_argmax``: its CPU and GPU kernels agree on
ties (first maximum wins) but not on edge cases. The GPU kernel starts from
the dtype's lowest finite value, so a window holding only ``-inf`` gets
argmax ``-1`` and the value ``-FLT_MAX``, and it skips NaNs (unless
``TF_ENABLE_MAXPOOL_NANPROP`` is set); on CPU the first element of such a
window wins and a leading NaN is kept. The version here is made of plain
element-wise TF ops, so it gives the same result on every device (and under
XLA), and its gradient reaches exactly the element that the argmax names.
"""
import numbers

import tensorflow as tf

PADDINGS = ("valid", "same")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def normalize_pair(value, name):
    """``value`` (an int or a pair) as a pair of positive Python ints."""
    if _is_int(value):
        pair = (value, value)
    else:
        pair = tuple(value) if isinstance(value, (list, tuple)) else ()
    if len(pair) != 2 or not all(_is_int(v) and v >= 1 for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints >= 1, got {value!r}")
    return int(pair[0]), int(pair[1])


def normalize_padding(padding):
    """``padding`` as ``"valid"`` or ``"same"`` (case-insensitive)."""
    mode = str(padding).lower()
    if mode not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return mode


def pooled_length(length, pool, stride, padding):
    """Output length of pooling along one axis; ``length`` may be a tensor or None."""
    if length is None:
        return None
    if padding == "same":
        return (length + stride - 1) // stride
    # A window larger than the input gives an empty output, not a negative size.
    count = (length - pool) // stride + 1
    return max(count, 0) if isinstance(count, int) else tf.maximum(count, 0)


def unpooled_length(length, pool, stride, padding):
    """Largest input length that pools to ``length`` (None stays None).

    Pooling is many-to-one (lengths 4 and 5 both pool to 2 with pool and
    stride 2), so this is only a default: pass the true size to
    :func:`max_unpool` when the input size may not have been a multiple.
    """
    if length is None:
        return None
    if padding == "same":
        return length * stride
    return (length - 1) * stride + pool


def padding_amounts(in_length, out_length, pool, stride, padding):
    """Zeros padded before and after one axis (TensorFlow's "same" split)."""
    if padding == "same":
        total = tf.maximum((out_length - 1) * stride + pool - in_length, 0)
        before = total // 2
        return before, total - before
    zero = tf.zeros((), tf.int64)
    return zero, zero


def with_static_shape(tensor, batch, height, width, channels):
    """``tensor`` with whatever of its 4 dimensions is known statically."""
    return tf.ensure_shape(tensor, (batch, height, width, channels))


def static_int(value):
    """``value`` as a Python int when it is known before run time, else None."""
    value = tf.get_static_value(value)
    return None if value is None else int(value)


def max_pool_with_argmax(x, pool_size=2, strides=None, padding="valid"):
    """Max pooling returning the values and the flat positions of the maxima.

    Every window is scanned in row-major order (rows of the window, then
    columns) and an element replaces the current maximum only if it is
    strictly greater, so among equal maxima the first one wins. A NaN wins
    only as the first element of its window (it then stays, since nothing
    compares greater than NaN); otherwise it is passed over. This matches
    the CPU kernel of ``tf.nn.max_pool_with_argmax``, on every device.
    ``pooled`` is always ``x`` read at ``argmax``, so ``-inf`` windows give
    ``-inf`` and a valid position.

    ``"same"`` padding pads like TensorFlow (the extra row or column goes at
    the end) and padded positions are never chosen.

    The gradient of ``pooled`` goes to the chosen element only, one per
    window; overlapping windows that chose the same element add up there.

    Args:
        x: ``(batch, height, width, channels)`` float tensor.
        pool_size: int or ``(rows, columns)`` window size.
        strides: int or pair; defaults to ``pool_size``.
        padding: ``"valid"`` or ``"same"``.

    Returns:
        ``(pooled, argmax)``, both ``(batch, out_height, out_width,
        channels)``. ``pooled`` has the dtype of ``x``. ``argmax`` is int64,
        the index into the flattened ``(height, width, channels)`` of the
        same example, ``(row * width + column) * channels + channel``, as
        ``tf.nn.max_pool_with_argmax(..., include_batch_in_index=False)``.

    Example:

    >>> x = tf.reshape(tf.constant([1., 3., 2., 2., 0., 3., 1., 1.]), (1, 2, 4, 1))
    >>> pooled, argmax = max_pool_with_argmax(x, 2)
    >>> pooled[0, :, :, 0].numpy(), argmax[0, :, :, 0].numpy()
    (array([[3., 2.]], dtype=float32), array([[1, 2]]))

    References:
        V. Badrinarayanan, A. Kendall, R. Cipolla, "SegNet: A deep
        convolutional encoder-decoder architecture for image segmentation",
        IEEE TPAMI, 2017.
    """
    pool_h, pool_w = normalize_pair(pool_size, "pool_size")
    stride_h, stride_w = normalize_pair(
        pool_size if strides is None else strides, "strides"
    )
    padding = normalize_padding(padding)
    x = tf.convert_to_tensor(x)
    shape = tf.shape(x, out_type=tf.int64)
    height, width, channels = shape[1], shape[2], shape[3]
    out_h = pooled_length(height, pool_h, stride_h, padding)
    out_w = pooled_length(width, pool_w, stride_w, padding)
    top, bottom = padding_amounts(height, out_h, pool_h, stride_h, padding)
    left, right = padding_amounts(width, out_w, pool_w, stride_w, padding)
    padded = tf.pad(x, [[0, 0], [top, bottom], [left, right], [0, 0]])

    window_rows = tf.range(out_h) * stride_h - top
    window_cols = tf.range(out_w) * stride_w - left
    # Scan the window offsets in row-major order, keeping per output element
    # the best value so far and the offset (i * pool_w + j) it came from.
    best_value = best_offset = found = None
    for offset in range(pool_h * pool_w):
        i, j = divmod(offset, pool_w)
        candidate = padded[:, i::stride_h, j::stride_w, :][:, :out_h, :out_w, :]
        if padding == "same":
            rows, cols = window_rows + i, window_cols + j
            inside = ((rows >= 0) & (rows < height))[:, None, None] & (
                (cols >= 0) & (cols < width)
            )[None, :, None]
        if best_value is None:
            best_value = candidate
            best_offset = tf.zeros_like(candidate, tf.int32)
            if padding == "same":
                found = tf.broadcast_to(inside, tf.shape(candidate))
            continue
        # Only a strictly greater element replaces the best one: the first
        # maximum wins, and NaN only when it comes first. With "same"
        # padding the first element inside the input is taken regardless.
        take = candidate > best_value
        if padding == "same":
            take = inside & (tf.logical_not(found) | take)
            found = found | inside
        best_value = tf.where(take, candidate, best_value)
        best_offset = tf.where(take, offset, best_offset)
    best_offset = tf.cast(best_offset, tf.int64)
    rows = window_rows[:, None, None] + best_offset // pool_w
    cols = window_cols[None, :, None] + best_offset % pool_w
    best_index = (rows * width + cols) * channels + tf.range(channels)
    b, h, w, c = x.shape
    static = (
        b,
        pooled_length(h, pool_h, stride_h, padding),
        pooled_length(w, pool_w, stride_w, padding),
        c,
    )
    return (
        with_static_shape(best_value, *static),
        with_static_shape(best_index, *static),
    )
