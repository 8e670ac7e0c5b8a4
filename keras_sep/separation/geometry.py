"""The chunk layout of a :class:`~keras_sep.models.WaveformSeparator`, from its config.

What :class:`~keras_sep.separation.engine.ChunkStream` needs to know of a
separator (segment length, hops, cross-fade weights), read from the plain
config an export keeps beside its network, so that the runners of exports
(LiteRT, the saved TensorFlow plan) stream songs exactly as the Keras
separator does without loading it.
"""
import numpy as np


class ChunkGeometry:
    """The chunks a separator with this config cuts a song into.

    Args:
        config: a mapping with at least ``frame_length``, ``frame_step``,
            ``bins``, ``chunk_frames``, ``channels`` and ``instruments``
            (an export's ``keras_sep.json``).

    Example:

    Spleeter's layout: 512 frames of 4096 samples at a hop of 1024, so a
    chunk spans 527,360 samples; 20 s at 44.1 kHz take two chunks that
    share 16 frames:

    >>> geometry = ChunkGeometry(dict(frame_length=4096, frame_step=1024, bins=1024, chunk_frames=512,
    ...                               channels=2, instruments=["vocals", "accompaniment"]))
    >>> geometry.segment_length, geometry.num_chunks(20 * 44100, overlap_frames=16)
    (527360, 2)
    >>> geometry.chunk_weights([0, 1], 2, 2)[:, [0, 1, 510, 511]].tolist()
    [[1.0, 1.0, 0.75, 0.25], [0.25, 0.75, 1.0, 1.0]]
    """

    def __init__(self, config):
        self.frame_length = int(config["frame_length"])
        self.frame_step = int(config["frame_step"])
        self.bins = int(config["bins"])
        self.chunk_frames = int(config["chunk_frames"])
        self.channels = int(config["channels"])
        self.instruments = tuple(config["instruments"])
        if not 0 < self.bins <= self.frame_length // 2 + 1:
            raise ValueError(f"bins must be in [1, {self.frame_length // 2 + 1}] for frame_length={self.frame_length}, "
                             f"got {self.bins}")

    @property
    def segment_length(self):
        """Samples one chunk spans."""
        return (self.chunk_frames - 1) * self.frame_step + self.frame_length

    def chunk_hop(self, overlap_frames):
        """Frames from one chunk's start to the next."""
        return self.chunk_frames - overlap_frames

    def num_chunks(self, num_samples, overlap_frames):
        """Chunks that cover ``num_samples`` (and the frame of padding before them)."""
        frames = -(-(num_samples + self.frame_length) // self.frame_step)
        return max(1, -(-(frames - overlap_frames) // self.chunk_hop(overlap_frames)))

    def chunk_weights(self, indices, num_chunks, overlap_frames):
        """Cross-fade weights ``(len(indices), chunk_frames)`` float32: linear
        fades over the shared frames, none before the first chunk or after
        the last."""
        indices = np.asarray(indices)[:, None]
        weights = np.ones((len(indices), self.chunk_frames), np.float32)
        if overlap_frames:
            ramp = ((np.arange(overlap_frames, dtype=np.float32) + 0.5) / overlap_frames)[None, :]
            weights[:, :overlap_frames] = np.where(indices > 0, ramp, 1.0)
            weights[:, self.chunk_frames - overlap_frames :] = np.where(indices < num_chunks - 1, 1.0 - ramp, 1.0)
        return weights
