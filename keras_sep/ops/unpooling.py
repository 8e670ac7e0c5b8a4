"""Max pooling that remembers where each maximum was, and its inverse.

Three pure TensorFlow functions on channels-last 4-D tensors
``(batch, height, width, channels)``, any of whose axes may be unknown until
run time:

- :func:`max_pool_with_argmax`: max pooling plus the flat position of each
  maximum inside its example;
- :func:`max_unpool`: puts pooled values back at those positions, zeros
  elsewhere (SegNet's decoder upsampling);
- :func:`bed_of_nails_upsample`: each value at the top-left corner of its
  upsampled cell, zeros elsewhere.

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


def _padding_amounts(in_length, out_length, pool, stride, padding):
    """Zeros padded before and after one axis (TensorFlow's "same" split)."""
    if padding == "same":
        total = tf.maximum((out_length - 1) * stride + pool - in_length, 0)
        before = total // 2
        return before, total - before
    zero = tf.zeros((), tf.int64)
    return zero, zero


def _with_static_shape(tensor, batch, height, width, channels):
    """``tensor`` with whatever of its 4 dimensions is known statically."""
    return tf.ensure_shape(tensor, (batch, height, width, channels))


def _static_int(value):
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
    top, bottom = _padding_amounts(height, out_h, pool_h, stride_h, padding)
    left, right = _padding_amounts(width, out_w, pool_w, stride_w, padding)
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
        _with_static_shape(best_value, *static),
        _with_static_shape(best_index, *static),
    )


def _check_indices(indices, pooled_shape, out_h, out_w, geometry):
    """An assertion that every index can come from pooling the assumed size.

    Every index must lie inside one example of ``(out_h, out_w, channels)``
    (as PyTorch's ``max_unpool2d`` checks); with the pooling ``geometry``
    known it must also name the channel and a position inside the window of
    the pooled element that holds it, and the assumed size must pool to the
    pooled size. Indices of a tensor of another size then fail (for 7 × 9
    read as 6 × 8 every row after the first shifts out of its window)
    instead of being scattered to wrong places. Negative indices are the
    "no maximum" marker and pass (they are dropped).
    """
    batch, height, width, channels = (pooled_shape[i] for i in range(4))
    per_example = out_h * out_w * channels
    ok = indices < per_example
    details = ""
    if geometry is not None:
        (pool_h, pool_w), (stride_h, stride_w), padding = geometry
        top, _ = _padding_amounts(out_h, height, pool_h, stride_h, padding)
        left, _ = _padding_amounts(out_w, width, pool_w, stride_w, padding)
        first_row = (tf.range(height) * stride_h - top)[:, None, None]
        first_col = (tf.range(width) * stride_w - left)[None, :, None]
        position, channel = indices // channels, indices % channels
        row, col = position // out_w, position % out_w
        in_window = (
            tf.equal(channel, tf.range(channels))
            & (row >= first_row)
            & (row < first_row + pool_h)
            & (col >= first_col)
            & (col < first_col + pool_w)
        )
        ok = ok & in_window
        sizes_agree = tf.equal(
            pooled_length(out_h, pool_h, stride_h, padding), height
        ) & tf.equal(pooled_length(out_w, pool_w, stride_w, padding), width)
        ok = tf.reduce_all(ok | (indices < 0)) & sizes_agree
        details = (
            f" pooled with pool_size={(pool_h, pool_w)}, "
            f"strides={(stride_h, stride_w)}, padding={padding!r}"
        )
    else:
        ok = tf.reduce_all(ok)
    return tf.debugging.Assert(
        ok,
        [
            "max_unpool: the argmax indices do not come from a tensor of the "
            f"assumed (height, width){details}; give the size of the tensor "
            "that was pooled (MaxUnpooling2D's third input or output_size). "
            "Assumed (height, width), pooled (height, width):",
            tf.stack([out_h, out_w]),
            tf.stack([height, width]),
        ],
        name="check_unpool_indices",
    )


def max_unpool(values, indices, output_size, pool_size=None, strides=None, padding="valid"):
    """Scatter pooled values back to the positions their argmax names.

    ``output[b].flat[indices[b, ...]] = values[b, ...]`` on a zero tensor
    ``(batch, out_height, out_width, channels)``, the inverse of
    :func:`max_pool_with_argmax` up to the non-maxima, which become zero.
    ``unpool(*pool(x), size_of(x))`` keeps each window maximum at its place
    with its value.

    Positions named more than once (overlapping windows, ``strides <
    pool_size``, that chose the same element) get the largest of their
    values, not the sum: when the values come from the pooling they are the
    same number, which comes back unchanged. The gradient then goes to the
    value that was kept; equal values share it equally (each of ``n`` gets
    ``1 / n``), so the gradients of one output position sum to its own.

    Indices that cannot come from a tensor of ``output_size`` raise
    ``tf.errors.InvalidArgumentError`` when the graph runs: any index past
    one example of ``(out_height, out_width, channels)``, and, when
    ``pool_size`` is given, any index outside the window (and channel) of
    its pooled element or an ``output_size`` that does not pool to the
    size of ``values``. Negative indices, e.g. the ``-1`` that
    ``tf.nn.max_pool_with_argmax`` gives on GPU for windows of ``-inf``,
    mean "no maximum" and are dropped. XLA compiles assertions away: under
    ``jit_compile=True`` wrong indices are dropped or misplaced silently.

    Args:
        values: ``(batch, height, width, channels)`` float tensor.
        indices: integer tensor of the same shape, flat positions inside
            one example's ``(out_height, out_width, channels)`` as
            :func:`max_pool_with_argmax` returns them.
        output_size: ``(out_height, out_width)``, Python ints or scalar
            tensors: the spatial size of the tensor that was pooled. The
            indices are only meaningful against that exact size.
        pool_size: optional int or pair, the pooling window that gave
            ``indices``; enables the window check.
        strides: int or pair, the pooling strides; ``None`` means
            ``pool_size``.
        padding: ``"valid"`` or ``"same"``, the pooling padding.

    Returns:
        ``(batch, out_height, out_width, channels)`` tensor, dtype of
        ``values``.

    Example:

    >>> x = tf.reshape(tf.constant([1., 3., 2., 2., 0., 3., 1., 1.]), (1, 2, 4, 1))
    >>> max_unpool(*max_pool_with_argmax(x, 2), (2, 4), pool_size=2)[0, :, :, 0].numpy()
    array([[0., 3., 2., 0.],
           [0., 0., 0., 0.]], dtype=float32)
    """
    geometry = None
    if pool_size is not None:
        pool = normalize_pair(pool_size, "pool_size")
        stride = normalize_pair(pool if strides is None else strides, "strides")
        geometry = (pool, stride, normalize_padding(padding))
    values = tf.convert_to_tensor(values)
    indices = tf.cast(indices, tf.int64)
    shape = tf.shape(values, out_type=tf.int64)
    batch, channels = shape[0], shape[3]
    out_h = tf.cast(output_size[0], tf.int64)
    out_w = tf.cast(output_size[1], tf.int64)
    check = _check_indices(indices, shape, out_h, out_w, geometry)
    per_example = out_h * out_w * channels
    offsets = tf.reshape(tf.range(batch, dtype=tf.int64) * per_example, (-1, 1, 1, 1))
    inside = (indices >= 0) & (indices < per_example)
    # Segment ops skip negative ids: that is how "no maximum" is dropped.
    segment_ids = tf.reshape(tf.where(inside, indices + offsets, -1), (-1,))
    flat_values = tf.reshape(values, (-1,))
    num_segments = batch * per_example
    largest = tf.math.unsorted_segment_max(flat_values, segment_ids, num_segments)
    hits = tf.math.unsorted_segment_sum(
        tf.ones_like(segment_ids, tf.int32), segment_ids, num_segments
    )
    # Segments nobody wrote to hold the dtype's lowest value; make them zero.
    flat = tf.where(hits > 0, largest, tf.zeros_like(largest))
    output_shape = tf.stack([batch, out_h, out_w, channels])
    with tf.control_dependencies([check]):
        output = tf.reshape(flat, output_shape)
    return _with_static_shape(
        output,
        values.shape[0],
        _static_int(output_size[0]),
        _static_int(output_size[1]),
        values.shape[3],
    )


def bed_of_nails_upsample(x, size=2):
    """Each value at the top-left of its ``size`` cell, zeros elsewhere.

    ``output[:, i * sh, j * sw, :] = x[:, i, j, :]``, every other position
    zero; ``(batch, h, w, c)`` becomes ``(batch, h * sh, w * sw, c)``. Built
    from a reshape and a pad, so the gradient is the strided subsampling of
    the output gradient.

    Args:
        x: ``(batch, height, width, channels)`` tensor.
        size: int or ``(rows, columns)`` upsampling factor.

    Returns:
        ``(batch, height * rows, width * columns, channels)`` tensor.

    Example:

    >>> x = tf.reshape(tf.constant([1., 2.]), (1, 1, 2, 1))
    >>> bed_of_nails_upsample(x)[0, :, :, 0].numpy()
    array([[1., 0., 2., 0.],
           [0., 0., 0., 0.]], dtype=float32)
    """
    rows, cols = normalize_pair(size, "size")
    x = tf.convert_to_tensor(x)
    shape = tf.shape(x)
    cells = x[:, :, None, :, None, :]
    zeros_after = [[0, 0], [0, 0], [0, rows - 1], [0, 0], [0, cols - 1], [0, 0]]
    cells = tf.pad(cells, zeros_after)
    output_shape = tf.stack([shape[0], shape[1] * rows, shape[2] * cols, shape[3]])
    b, h, w, c = x.shape
    return _with_static_shape(
        tf.reshape(cells, output_shape),
        b,
        None if h is None else h * rows,
        None if w is None else w * cols,
        c,
    )
