"""Max-unpooling: pooled values back at the positions their argmax names.

:func:`max_unpool` is SegNet's decoder upsampling: the inverse of
:func:`keras_sep.ops.pooling.max_pool_with_argmax`, zeros wherever no
maximum was, with a run-time check that the indices can come from pooling a
tensor of the assumed size.
"""
import tensorflow as tf

from keras_sep.ops.pooling import (
    padding_amounts,
    static_int,
    with_static_shape,
    normalize_padding,
    normalize_pair,
    pooled_length,
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
        top, _ = padding_amounts(out_h, height, pool_h, stride_h, padding)
        left, _ = padding_amounts(out_w, width, pool_w, stride_w, padding)
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

    >>> from keras_sep.ops.pooling import max_pool_with_argmax
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
    return with_static_shape(
        output,
        values.shape[0],
        static_int(output_size[0]),
        static_int(output_size[1]),
        values.shape[3],
    )
