"""Upsampling without learned weights that the Keras layers lack.

:func:`bed_of_nails_upsample` puts each value at the top-left corner of its
upsampled cell and zeros elsewhere (nearest and bilinear upsampling are
Keras' own ``UpSampling2D``; see :class:`keras_sep.layers.Upsampling2D`).
"""
import tensorflow as tf

from keras_sep.ops.pooling import with_static_shape, normalize_pair


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
    return with_static_shape(
        tf.reshape(cells, output_shape),
        b,
        None if h is None else h * rows,
        None if w is None else w * cols,
        c,
    )
