"""Cross-fade weights of overlapping chunks (the chunked separators' seams)."""
import tensorflow as tf


def crossfade_weights(indices, num_chunks, chunk_frames, overlap):
    """Cross-fade weights ``(len(indices), chunk_frames)`` float32 of some chunks.

    Over the ``overlap`` frames two consecutive chunks share, the earlier
    one fades out linearly while the later one fades in, so the weights of
    every frame sum to 1; the first chunk does not fade in and the last does
    not fade out.

    Args:
        indices: 1-D int, which chunks (0 … ``num_chunks - 1``).
        num_chunks: how many chunks the signal has (int or scalar tensor).
        chunk_frames: frames per chunk.
        overlap: frames shared by consecutive chunks (Python int, at most
            half of ``chunk_frames``).

    Example:

    >>> import numpy as np
    >>> w = crossfade_weights([0, 1], 2, chunk_frames=6, overlap=2).numpy()
    >>> w.round(2).tolist()
    [[1.0, 1.0, 1.0, 1.0, 0.75, 0.25], [0.25, 0.75, 1.0, 1.0, 1.0, 1.0]]
    >>> bool(np.allclose(w[0, 4:] + w[1, :2], 1.0))
    True
    """
    indices = tf.convert_to_tensor(indices, tf.int32)[:, None]
    if overlap == 0:
        return tf.ones(tf.stack([tf.shape(indices)[0], chunk_frames]), tf.float32)
    ramp = (tf.range(overlap, dtype=tf.float32) + 0.5) / overlap
    middle = tf.ones(tf.stack([tf.shape(indices)[0], chunk_frames - 2 * overlap]))
    head = tf.where(indices > 0, ramp[None, :], 1.0)
    tail = tf.where(indices < num_chunks - 1, 1.0 - ramp[None, :], 1.0)
    return tf.concat([head, middle, tail], axis=1)
