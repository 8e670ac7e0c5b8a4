"""The chunk-streaming engine: input blocks in, finished output blocks out.

The engine knows the chunk layout (a :class:`~keras_sep.models.WaveformSeparator`'s
geometry) but not what a chunk's computation is: that comes in as ``run``,
so that the same bookkeeping serves the compiled network, the Wiener
filter's two passes, and tests with a plain NumPy function.
"""
import numpy as np


class ChunkStream:
    """Turns input blocks into output blocks, one batch of chunks at a time.

    Positions are in the "padded" time line: ``frame_length`` zeros, then the
    input. Chunk ``c`` needs padded samples ``[c * hop, c * hop + segment)``
    and contributes to the same output stretch. Chunks run in order, so once
    chunk ``c`` is added everything before ``(c + 1) * hop`` is final; only
    the stretch the next chunk overlaps (the "tail") waits, and it is added
    in place into the next chunk's output rather than into a separate
    accumulator.

    Args:
        geometry: the chunk layout: a ``WaveformSeparator`` (or anything
            with its ``segment_length``, ``frame_length``, ``frame_step``,
            ``channels``, ``instruments``, ``chunk_hop``, ``num_chunks`` and
            ``chunk_weights``). A ``centred`` one (``OpenUnmixSeparator``)
            has ``stream_lead`` samples before the input instead of
            ``frame_length``, the input's ends reflected into them and past
            the end, a last chunk only as long as the song's frames
            (``num_frames``), and output gains at the ends (``edge_gain``).
        overlap: frames two neighbouring chunks share.
        batch_size: chunks per ``run`` call (only the last may hold fewer).
        run: ``(segments (chunks, segment, channels), weights (chunks,
            chunk_frames)) -> {instrument: (chunks, segment, channels)}``.
            The segments array is reused once ``run`` returns; the returned
            arrays are added into in place.

    Example:

    Blocks of any size in, and out comes exactly what the model gives for
    the whole input at once:

    >>> import numpy as np
    >>> from keras_sep.models import UNetSeparator, WaveformSeparator
    >>> net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    >>> model = WaveformSeparator(net, frame_length=64, frame_step=16, overlap_frames=4)
    >>> def run(segments, weights):
    ...     stems = model.separate_segments(segments, weights)
    ...     return {name: np.array(stem) for name, stem in stems.items()}
    >>> stream = ChunkStream(model, overlap=4, batch_size=2, run=run)
    >>> mixture = np.random.default_rng(0).normal(size=(1000, 2)).astype("float32")
    >>> outs = [stream.push(mixture[:300]), stream.push(mixture[300:700]),
    ...         stream.push(mixture[700:], final=True)]
    >>> [len(out["vocals"]) for out in outs]
    [0, 320, 680]
    >>> vocals = np.concatenate([out["vocals"] for out in outs])
    >>> bool(np.allclose(vocals, model(mixture[None])["vocals"][0], atol=1e-6))
    True
    """

    spare = 1 << 18  # room in the input buffer beyond one chunk (it grows for larger blocks)

    def __init__(self, geometry, overlap, batch_size, run):
        self.geometry = geometry
        self.run = run
        self.batch_size = batch_size
        self.overlap = overlap
        self.hop = geometry.chunk_hop(overlap) * geometry.frame_step
        self.segment = geometry.segment_length
        self.centred = getattr(geometry, "centred", False)
        self.lead = geometry.stream_lead if self.centred else geometry.frame_length
        # A centred chunk runs before the end only when the input holds a
        # frame more than it spans: else it could turn out to be the last.
        self.lookahead = geometry.frame_step if self.centred else 0
        self.total = None  # input samples, once the end is known
        self.channels = geometry.channels
        # Input not yet consumed: buffer[begin:end], one array reused for the
        # whole stream (no new array per block).
        self.buffer = np.zeros((self.lead + self.segment + self.spare, self.channels), np.float32)
        # buffer[begin] and tail[...][0] are at padded position next_chunk * hop.
        self.begin, self.end = 0, self.lead
        self.segments = None
        # A chunk's cross-fade weights depend only on whether it is first and
        # whether it is last: the four rows are made once, not as TensorFlow
        # ops for every chunk. Keys (first, last), each from an example.
        examples = {(True, True): ([0], 1), (True, False): ([0], 2), (False, False): ([1], 3), (False, True): ([1], 2)}
        self.rows = {
            kind: np.asarray(geometry.chunk_weights(index, count, overlap), np.float32)[0]
            for kind, (index, count) in examples.items()
        }
        self.received = 0  # input samples seen
        self.next_chunk = 0
        self.tail = {name: np.zeros((0, self.channels), np.float32) for name in geometry.instruments}
        self.emitted = 0  # input-aligned output samples already returned

    def _ready_chunks(self, final):
        if final:
            total = self.geometry.num_chunks(self.received, self.overlap)
            return list(range(self.next_chunk, total))
        end = self.next_chunk * self.hop + self.end - self.begin
        last = (end - self.segment - self.lookahead) // self.hop
        ready = list(range(self.next_chunk, last + 1)) if end >= self.segment + self.lookahead else []
        # Whole batches only until the end: the input waits for the rest.
        return ready[: len(ready) - len(ready) % self.batch_size]

    def push(self, block, final=False):
        """Add input samples; return output samples that are now final."""
        if block is not None and len(block):
            self._append(block)
            self.received += len(block)
        chunks = self._ready_chunks(final)
        self.total = self.received if final else None
        pieces = {name: [] for name in self.geometry.instruments}
        # A centred stream's last chunk has a length of its own: alone.
        alone = [chunks[-1:]] if final and self.centred and chunks else []
        chunks = chunks[: len(chunks) - len(alone)]
        for group in [chunks[i : i + self.batch_size] for i in range(0, len(chunks), self.batch_size)] + alone:
            self._process(group, final, pieces)
        if final:
            self._emit(self.tail, self.next_chunk * self.hop, pieces)
        merged = {}
        for name, parts in pieces.items():
            if len(parts) == 1:
                merged[name] = parts[0]
            else:
                merged[name] = np.concatenate(parts) if parts else np.zeros((0, self.channels), np.float32)
        return merged

    def _append(self, block):
        live = self.end - self.begin
        if self.end + len(block) > len(self.buffer):
            if live + len(block) > len(self.buffer):
                grown = np.empty((2 * (live + len(block)), self.channels), np.float32)
                grown[:live] = self.buffer[self.begin : self.end]
                self.buffer = grown
            else:  # move what is still needed to the front
                self.buffer[:live] = self.buffer[self.begin : self.end]
            self.begin, self.end = 0, live
        self.buffer[self.end : self.end + len(block)] = block
        self.end += len(block)

    def _process(self, chunks, final, pieces):
        segments, weights, first = self._gather(chunks, final)
        stems = self.run(segments, weights)
        for row, c in enumerate(chunks):
            start = c * self.hop
            finished = {}
            for name, values in stems.items():
                out = values[row]
                tail = self.tail[name]
                out[: len(tail)] += tail  # the earlier chunks' overlap
                finished[name] = out[: self.hop]
                self.tail[name] = out[self.hop :]
            self._emit(finished, start, pieces)
        self._advance(chunks, first)

    def _gather(self, chunks, final):
        """The chunks' input segments and cross-fade weights, and the padded
        position of ``buffer[begin]``."""
        total = self.geometry.num_chunks(self.received, self.overlap) if final else None
        first = self.next_chunk * self.hop  # padded position of buffer[begin]
        size = self.segment
        if self.centred and total is not None and chunks[-1] == total - 1:
            frames = self.geometry.num_frames(self.received) - chunks[-1] * self.geometry.chunk_hop(self.overlap)
            size = (frames - 1) * self.geometry.frame_step + self.geometry.frame_length
        if self.segments is None or self.segments.shape[:2] != (len(chunks), size):
            self.segments = np.zeros((len(chunks), size, self.channels), np.float32)
        segments = self.segments  # reused: run() is done with it when it returns
        for row, c in enumerate(chunks):
            begin = self.begin + c * self.hop - first
            piece = self.buffer[begin : min(begin + size, self.end)]
            if self.centred and (c == 0 or size != self.segment):
                piece = self._reflected(piece, c == 0, size)
            segments[row, : len(piece)] = piece
            segments[row, len(piece) :] = 0
        # Before the end is known, no chunk is the last one.
        weights = self._weights(chunks, total or 1 << 30)
        frames = (size - self.geometry.frame_length) // self.geometry.frame_step + 1
        return segments, weights[:, :frames], first

    def _reflected(self, piece, first, size):
        """A centred chunk's stretch with the input's start reflected into
        the lead (``first``) and its end reflected past it, as
        ``torch.stft(center=True)`` pads (repeatedly for tiny inputs)."""
        signal = piece[self.lead :] if first else piece
        before = self.lead if first else 0
        after = max(0, size - before - len(signal))
        return np.pad(signal, ((before, after), (0, 0)), mode="reflect")[:size]

    def _advance(self, chunks, first):
        self.next_chunk = chunks[-1] + 1
        # Input before the next chunk's start is no longer needed.
        self.begin = min(self.begin + self.next_chunk * self.hop - first, self.end)

    def _weights(self, chunks, total):
        """Cross-fade weights ``(len(chunks), chunk_frames)`` of ``chunks`` out of ``total``."""
        return np.stack([self.rows[(c == 0, c == total - 1)] for c in chunks])

    def _emit(self, finished, start, pieces):
        """Add the input-aligned part of final output that begins at padded
        position ``start`` to ``pieces`` (never past the input's length)."""
        first = self.lead + self.emitted - start  # skip the lead and what was emitted
        count = min(len(next(iter(finished.values()))) - first, self.received - self.emitted)
        if count <= 0:
            return
        gain = self.geometry.edge_gain(self.emitted, count, self.total) if self.centred else None
        for name, values in finished.items():
            values = values[first : first + count]
            pieces[name].append(values if gain is None else values * gain[:, None])
        self.emitted += count


class StatisticsStream(ChunkStream):
    """The first pass of multichannel Wiener filtering: the same chunks as
    :class:`ChunkStream`, but ``run`` returns their ``(covariance, power,
    peak)`` (:meth:`WaveformSeparator.wiener_statistics`), which are summed
    into :attr:`covariance`, :attr:`power` and :attr:`peak` (the largest);
    :meth:`push` returns no output."""

    def __init__(self, geometry, overlap, batch_size, run):
        super().__init__(geometry, overlap, batch_size, run)
        self.covariance = self.power = None
        self.peak = 0.0

    def _process(self, chunks, final, pieces):
        segments, weights, first = self._gather(chunks, final)
        covariance, power, peak = self.run(segments, weights)
        if self.covariance is None:
            # Summed over a whole song: float32 sums would lose the quiet chunks.
            self.covariance, self.power = covariance.astype(np.complex128), power.astype(np.float64)
        else:
            self.covariance += covariance
            self.power += power
        self.peak = max(self.peak, float(peak))
        self._advance(chunks, first)
