"""A :class:`~keras_sep.models.WaveformSeparator`'s signal path in NumPy.

The LiteRT export holds only the spectrogram network; this module does what
the Keras model does around it (STFT, ratio masks, their extension above the
cutoff, masking, inverse STFT) for one batch of chunks, from the resolved
config written beside the export, without importing TensorFlow.
"""
import numpy as np

from keras_sep.separation.geometry import ChunkGeometry

MASK_EXTENSIONS = ("zeros", "average")
# keras_sep.ops.masks.ratio_masks' default: silent bins are split evenly.
_EPSILON = 1e-10


def periodic_hann(length):
    """The periodic (DFT-even) Hann window ``tf.signal.hann_window`` makes, float32."""
    n = np.arange(length, dtype=np.float64)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / length)).astype(np.float32)


class SpectralChunks(ChunkGeometry):
    """Chunk layout and per-chunk separation of an exported separator.

    It is the ``geometry`` a :class:`keras_sep.separation.engine.ChunkStream`
    needs (a :class:`~keras_sep.separation.geometry.ChunkGeometry`: the
    same chunks, hops and cross-fade weights as the Keras separator) and,
    with :meth:`separate_segments`, its ``run``.

    Args:
        config: the export's resolved config (``keras_sep.json``): at least
            ``frame_length``, ``frame_step``, ``bins``, ``chunk_frames``,
            ``channels``, ``instruments``, ``mask_extension`` and
            ``separation_exponent``.
        network: ``magnitude (1, chunk_frames, bins, channels) -> (instruments,
            1, chunk_frames, bins, channels)`` float32, e.g. a LiteRT
            interpreter's invocation.

    Example:

    A network that gives every instrument the same estimate splits the
    mixture evenly, so two instruments' stems are each half of it away
    from the edges:

    >>> import numpy as np
    >>> config = dict(frame_length=64, frame_step=16, bins=16, chunk_frames=16, channels=2,
    ...               instruments=["vocals", "accompaniment"], mask_extension="average",
    ...               separation_exponent=2.0)
    >>> chunks = SpectralChunks(config, lambda x: np.stack([x, x]))
    >>> segments = np.random.default_rng(0).normal(size=(1, chunks.segment_length, 2)).astype("float32")
    >>> stems = chunks.separate_segments(segments, chunks.chunk_weights([0], 1, 0))
    >>> middle = slice(64, chunks.segment_length - 64)
    >>> bool(np.allclose(stems["vocals"][0, middle], segments[0, middle] / 2, atol=1e-5))
    True
    """

    def __init__(self, config, network):
        super().__init__(config)
        self.mask_extension = config["mask_extension"]
        if self.mask_extension not in MASK_EXTENSIONS:
            raise ValueError(f"mask_extension must be one of {MASK_EXTENSIONS}, got {self.mask_extension!r}")
        self.separation_exponent = float(config["separation_exponent"])
        self.network = network
        self.window = periodic_hann(self.frame_length)
        # Overlap-add without window normalisation, then this constant
        # (keras_sep.ops.stft.overlap_add_scale: 2/3 for Hann at a quarter hop).
        self.output_scale = float(self.frame_step / np.sum(self.window.astype(np.float64) ** 2))

    # --- per-chunk separation -------------------------------------------------

    def separate_segments(self, segments, weights):
        """``segments (chunks, segment_length, channels)`` and cross-fade
        ``weights (chunks, chunk_frames)`` → ``{instrument: (chunks,
        segment_length, channels)}`` to be overlap-added at the chunk hop."""
        spectrum = self._stft(segments)  # (chunks, channels, frames, all bins)
        low = spectrum[..., : self.bins]
        magnitude = np.ascontiguousarray(np.abs(low).transpose(0, 2, 3, 1))  # (chunks, frames, bins, channels)
        estimates = np.stack([self.network(magnitude[i : i + 1])[:, 0] for i in range(len(magnitude))], axis=1)
        masks = self._ratio_masks(estimates)  # (instruments, chunks, frames, bins, channels)
        # The cross-fade weights and the overlap-add constant go into the
        # real masks, as the Keras model folds them.
        scale = np.asarray(weights, np.float32)[None, :, None, :, None] * np.float32(self.output_scale)
        masks = masks.transpose(0, 1, 4, 2, 3) * scale  # (instruments, chunks, channels, frames, bins)
        if self.mask_extension == "zeros":
            masked = low[None] * masks
        else:
            # Above the cutoff each frame gets its mean mask below it.
            above = masks.shape[:-1] + (spectrum.shape[-1] - self.bins,)
            masked = spectrum[None] * np.concatenate(
                [masks, np.broadcast_to(masks.mean(axis=-1, keepdims=True), above)], axis=-1
            )
        waves = self._istft(masked)  # (instruments, chunks, channels, samples)
        return {name: np.ascontiguousarray(waves[j].transpose(0, 2, 1)) for j, name in enumerate(self.instruments)}

    def _ratio_masks(self, estimates):
        if self.separation_exponent == 2:
            powered = np.square(estimates)
        elif self.separation_exponent == 1:
            powered = estimates
        else:
            powered = np.power(estimates, self.separation_exponent)
        total = powered.sum(axis=0) + np.float32(_EPSILON)
        return (powered + np.float32(_EPSILON / len(estimates))) / total

    def _stft(self, segments):
        signals = np.asarray(segments, np.float32).transpose(0, 2, 1)
        windows = np.lib.stride_tricks.sliding_window_view(signals, self.frame_length, axis=-1)
        frames = windows[..., :: self.frame_step, :]
        return np.fft.rfft(frames * self.window, axis=-1).astype(np.complex64, copy=False)

    def _istft(self, spectra):
        """``(..., frames, bins ≤ total)`` → ``(..., segment_length)``: windowed
        overlap-add, missing top bins as zeros, no normalisation."""
        frames = np.fft.irfft(spectra, n=self.frame_length, axis=-1).astype(np.float32, copy=False) * self.window
        count = frames.shape[-2]
        out = np.zeros(frames.shape[:-2] + (self.segment_length,), np.float32)
        if self.frame_length % self.frame_step == 0:
            # Blocks of one hop: frame_length / frame_step shifted sums.
            ratio = self.frame_length // self.frame_step
            blocks = frames.reshape(frames.shape[:-1] + (ratio, self.frame_step))
            view = out.reshape(out.shape[:-1] + (count + ratio - 1, self.frame_step))
            for q in range(ratio):
                view[..., q : q + count, :] += blocks[..., q, :]
        else:
            for t in range(count):
                out[..., t * self.frame_step : t * self.frame_step + self.frame_length] += frames[..., t, :]
        return out
