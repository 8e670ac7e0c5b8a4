"""Convolutions rewritten for speed where TensorFlow's CPU kernels are slow.

Both functions compute exactly what the standard op computes (up to float
rounding), for the cases the U-Net separator needs:

* :func:`conv2d_transpose_polyphase`: a strided "same" transposed
  convolution as one stride-1 convolution followed by ``depth_to_space``.
  Output pixel ``s·m + r`` of a stride-``s`` transposed convolution only
  meets the kernel taps ``t`` with ``t ≡ r + p (mod s)``, so each of the
  ``s²`` output phases is an ordinary convolution of the input with a
  sub-kernel; stacking the zero-padded sub-kernels along the output channels
  makes it one convolution. oneDNN's backward-data kernel, which
  ``tf.nn.conv2d_transpose`` uses on CPU, is 1.5–3.5× slower than that on
  layers with few output channels or a small spatial size.
* :func:`conv2d_transpose_from_taps`: a strided transposed convolution
  with few output channels as a 1×1 matrix product followed by shifted
  sums, which XLA fuses with the layer after it.
* :func:`conv2d_by_patches`: a strided "same" convolution as one matrix
  product over its input patches. On small feature maps with many channels
  (the U-Net's deepest encoder stages) oneDNN's direct kernel runs at half
  of matrix speed, while the patch matrix is small.
* :func:`conv2d_by_shifts`: a "same" convolution with few input and output
  channels as a sum of shifted slices times kernel taps. Nearly all the time
  of such a convolution is memory traffic; run under XLA the whole sum fuses
  into one pass over the input (the U-Net's dilated 4×4 mask head: 4 ms
  instead of 45 ms for two 512×1024 chunks).
"""
import tensorflow as tf


def _pair(value):
    return (int(value), int(value)) if isinstance(value, int) else tuple(int(v) for v in value)


def _dim(x, axis):
    """A static size where the shape has it (slices then need no shape ops,
    which keeps traced graphs small), else the dynamic one."""
    size = x.shape[axis]
    return int(size) if size is not None else tf.shape(x)[axis]


def _phase_taps(kernel_size, stride):
    """For each output phase r: the (tap t, input offset d) pairs it uses.

    With TensorFlow's "same" padding the transposed convolution writes input
    pixel i, tap t to output ``s·i + t − p`` where ``p = max(k − s, 0) // 2``.
    """
    pad = max(kernel_size - stride, 0) // 2
    phases = []
    for r in range(stride):
        phases.append([(t, -((t - pad - r) // stride)) for t in range(kernel_size) if (t - pad - r) % stride == 0])
    return phases


def polyphase_kernel(kernel, strides, merged=True):
    """Rearrange a transposed-convolution kernel for :func:`conv2d_transpose_polyphase`.

    Args:
        kernel: ``(kh, kw, out_channels, in_channels)``, as for
            ``tf.nn.conv2d_transpose``.
        strides: int or pair, both equal.
        merged: one stride-1 kernel for all phases, zero-padded to a common
            window (``ceil(k/s)²·s²`` taps instead of ``k²``, but a single
            convolution with ``s²`` times the output channels), or one exact
            sub-kernel per phase.

    Returns:
        A list of ``(kernel, padding)`` pairs: one (merged) or ``s²`` (per
        phase, row-major). Each kernel is ``(lh, lw, in_channels, c)`` for a
        stride-1 "VALID" convolution of the input padded by
        ``padding = ((top, bottom), (left, right))``; the merged kernel's
        ``c = s²·out_channels`` are ordered (row phase, column phase,
        channel) as ``depth_to_space`` expects.
    """
    kh, kw = int(kernel.shape[0]), int(kernel.shape[1])
    sh, sw = _pair(strides)
    if sh != sw:
        raise ValueError(f"polyphase transposed convolution needs equal strides, got {strides!r}")
    rows, cols = _phase_taps(kh, sh), _phase_taps(kw, sw)
    zero = tf.zeros_like(kernel[0, 0])

    def sub_kernel(row_phase, col_phase, row_span, col_span):
        by_row, by_col = dict((d, t) for t, d in row_phase), dict((d, t) for t, d in col_phase)
        grid = [
            tf.stack([kernel[by_row[dr], by_col[dc]] if dr in by_row and dc in by_col else zero for dc in col_span])
            for dr in row_span
        ]
        return tf.stack(grid)  # (lh, lw, out, in)

    def span(phases):
        offsets = [d for phase in phases for _, d in phase] or [0]
        return range(min(offsets), max(offsets) + 1)

    def padding(offsets):
        return (-offsets[0], offsets[-1])

    if merged:
        row_span, col_span = span(rows), span(cols)
        blocks = [sub_kernel(r, c, row_span, col_span) for r in rows for c in cols]
        merged_kernel = tf.transpose(tf.concat(blocks, axis=2), [0, 1, 3, 2])
        return [(merged_kernel, (padding(row_span), padding(col_span)))]
    result = []
    for r in rows:
        for c in cols:
            row_span, col_span = span([r]), span([c])
            sub = tf.transpose(sub_kernel(r, c, row_span, col_span), [0, 1, 3, 2])
            result.append((sub, (padding(row_span), padding(col_span))))
    return result


def conv2d_transpose_polyphase(x, kernel, strides, merged=True, prepared=None):
    """``tf.nn.conv2d_transpose(x, kernel, ..., strides, "SAME")`` by phases.

    Args:
        x: ``(batch, rows, cols, in_channels)``.
        kernel: ``(kh, kw, out_channels, in_channels)``; may be None when
            ``prepared`` is given.
        strides: int or pair; both the same.
        merged: see :func:`polyphase_kernel`.
        prepared: the result of :func:`polyphase_kernel` for this kernel, to
            rearrange it once rather than on every call.

    Returns:
        ``(batch, s·rows, s·cols, out_channels)``.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1, 6, 6, 3)).astype("float32")
    >>> kernel = rng.normal(size=(5, 5, 2, 3)).astype("float32")
    >>> reference = tf.nn.conv2d_transpose(x, kernel, (1, 12, 12, 2), 2, "SAME")
    >>> prepared = polyphase_kernel(kernel, 2)
    >>> y = conv2d_transpose_polyphase(x, None, 2, prepared=prepared)
    >>> y.shape, bool(np.allclose(y, reference, atol=1e-5))
    (TensorShape([1, 12, 12, 2]), True)
    """
    stride = _pair(strides)[0]
    parts = prepared if prepared is not None else polyphase_kernel(kernel, strides, merged)
    outputs = []
    for sub, ((top, bottom), (left, right)) in parts:
        # Negative padding (a phase that only reads ahead) is a crop.
        window = x[:, max(-top, 0) : _dim(x, 1) - max(-bottom, 0), max(-left, 0) : _dim(x, 2) - max(-right, 0), :]
        pads = [[0, 0], [max(top, 0), max(bottom, 0)], [max(left, 0), max(right, 0)], [0, 0]]
        outputs.append(tf.nn.conv2d(window, sub, 1, pads))
    if len(outputs) == 1:
        y = outputs[0]
    else:
        # (batch, rows, cols, phases · channels), phases row-major.
        y = tf.concat(outputs, axis=-1)
    return tf.nn.depth_to_space(y, stride) if stride > 1 else y


def transposed_tap_kernel(kernel):
    """``(kh, kw, out, in)`` transposed-convolution kernel → the
    ``(in, kh·kw·out)`` matrix that gives every input pixel's contribution
    to each tap (for :func:`conv2d_transpose_from_taps`)."""
    kh, kw, cout, cin = (int(v) for v in kernel.shape)
    return tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [cin, kh * kw * cout])


def conv2d_transpose_from_taps(taps, kernel_size, strides):
    """Finish a strided "same" transposed convolution from its per-tap
    contributions.

    With ``taps = x @ transposed_tap_kernel(kernel)`` (a 1×1 convolution,
    shaped ``(batch, rows, cols, kh·kw·out)``), output pixel ``s·m + r`` is
    the sum, over the taps of phase ``r``, of ``taps`` shifted by that tap's
    input offset. For few output channels the 1×1 product runs at matrix
    speed and, under XLA, the shifted sums fuse with whatever follows (the
    U-Net's mask head), where oneDNN's transposed kernel, or the phase form,
    runs at a fraction of that speed for one output channel.

    Args:
        taps: ``(batch, rows, cols, kh·kw·out_channels)``, tap-major.
        kernel_size: ``(kh, kw)`` or int.
        strides: int or pair, both equal.

    Returns:
        ``(batch, s·rows, s·cols, out_channels)``, as
        ``tf.nn.conv2d_transpose(x, kernel, ..., strides, "SAME")``.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1, 6, 6, 3)).astype("float32")
    >>> kernel = rng.normal(size=(5, 5, 2, 3)).astype("float32")
    >>> taps = tf.einsum("brci,ik->brck", x, transposed_tap_kernel(kernel))
    >>> taps.shape  # 5 x 5 taps x 2 output channels per input pixel
    TensorShape([1, 6, 6, 50])
    >>> y = conv2d_transpose_from_taps(taps, (5, 5), 2)
    >>> reference = tf.nn.conv2d_transpose(x, kernel, (1, 12, 12, 2), 2, "SAME")
    >>> bool(np.allclose(y, reference, atol=1e-5))
    True
    """
    kh, kw = _pair(kernel_size)
    stride, other = _pair(strides)
    if stride != other:
        raise ValueError(f"transposed convolution from taps needs equal strides, got {strides!r}")
    rows, cols = _phase_taps(kh, stride), _phase_taps(kw, stride)
    shape = tf.shape(taps)
    height, width = _dim(taps, 1), _dim(taps, 2)
    out_channels = int(taps.shape[-1]) // (kh * kw)
    taps = tf.reshape(taps, tf.concat([shape[:3], [kh, kw, out_channels]], axis=0))
    reach = max([abs(d) for phase in rows + cols for _, d in phase] + [0])
    padded = tf.pad(taps, [[0, 0], [reach, reach], [reach, reach], [0, 0], [0, 0], [0, 0]])
    phases = []
    for row_phase in rows:
        for col_phase in cols:
            total = None
            for tr, dr in row_phase:
                for tc, dc in col_phase:
                    term = padded[:, reach + dr : reach + dr + height, reach + dc : reach + dc + width, tr, tc, :]
                    total = term if total is None else total + term
            if total is None:  # a phase no tap reaches (kernel smaller than stride)
                total = tf.zeros(tf.concat([shape[:3], [out_channels]], axis=0), taps.dtype)
            phases.append(total)
    return tf.nn.depth_to_space(tf.concat(phases, axis=-1), stride) if stride > 1 else phases[0]


def conv2d_by_patches(x, kernel, strides):
    """``tf.nn.conv2d(x, kernel, strides, "SAME")`` as patches × matrix.

    Args:
        x: ``(batch, rows, cols, in_channels)``.
        kernel: ``(kh, kw, in_channels, out_channels)``.
        strides: int or pair.

    Returns:
        ``(batch, ceil(rows / sh), ceil(cols / sw), out_channels)``.

    Example:

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1, 6, 6, 3)).astype("float32")
    >>> kernel = rng.normal(size=(5, 5, 3, 4)).astype("float32")
    >>> y = conv2d_by_patches(x, kernel, 2)
    >>> y.shape, bool(np.allclose(y, tf.nn.conv2d(x, kernel, 2, "SAME"), atol=1e-5))
    (TensorShape([1, 3, 3, 4]), True)
    """
    kh, kw, cin, cout = (int(v) for v in kernel.shape)
    sh, sw = _pair(strides)
    # extract_patches pads "SAME" exactly as conv2d does and orders each
    # patch (row, column, channel), the kernel's own order.
    patches = tf.image.extract_patches(x, [1, kh, kw, 1], [1, sh, sw, 1], [1, 1, 1, 1], "SAME")
    shape = tf.shape(patches)
    y = tf.matmul(tf.reshape(patches, [-1, kh * kw * cin]), tf.reshape(kernel, [kh * kw * cin, cout]))
    return tf.reshape(y, tf.concat([shape[:3], [cout]], axis=0))


def conv2d_by_shifts(x, kernel, dilation_rate=1):
    """Stride-1 "same" convolution as a sum of shifted slices.

    Meant for few channels (e.g. 1 → 2) and for running under XLA, where the
    slices, products and sums fuse into one loop.

    Args:
        x: ``(batch, rows, cols, in_channels)``.
        kernel: ``(kh, kw, in_channels, out_channels)``.
        dilation_rate: int or pair.

    Returns:
        ``(batch, rows, cols, out_channels)``, as
        ``tf.nn.conv2d(x, kernel, 1, "SAME", dilations=dilation_rate)``.

    Example:

    The U-Net's mask head: one input channel, two outputs, a dilated 4×4
    kernel.

    >>> import numpy as np
    >>> import tensorflow as tf
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1, 6, 6, 1)).astype("float32")
    >>> kernel = rng.normal(size=(4, 4, 1, 2)).astype("float32")
    >>> y = conv2d_by_shifts(x, kernel, dilation_rate=2)
    >>> reference = tf.nn.conv2d(x, kernel, 1, "SAME", dilations=2)
    >>> y.shape, bool(np.allclose(y, reference, atol=1e-5))
    (TensorShape([1, 6, 6, 2]), True)
    """
    kh, kw, cin, _ = (int(v) for v in kernel.shape)
    dh, dw = _pair(dilation_rate)
    span_h, span_w = (kh - 1) * dh, (kw - 1) * dw
    top, left = span_h // 2, span_w // 2
    padded = tf.pad(x, [[0, 0], [top, span_h - top], [left, span_w - left], [0, 0]])
    rows, cols = _dim(x, 1), _dim(x, 2)
    total = None
    for i in range(kh):
        for j in range(kw):
            window = padded[:, i * dh : i * dh + rows, j * dw : j * dw + cols, :]
            for c in range(cin):
                term = window[..., c : c + 1] * kernel[i, j, c]
                total = term if total is None else total + term
    return total
