"""Waveform → stems for audio of any length, in bounded memory.

:class:`Separator` runs a :class:`~keras_sep.models.WaveformSeparator`
chunk by chunk: it keeps only the stretch of input the next chunks need and
the overlap-add tail of the output, so its memory does not grow with the
length of the audio. Files are streamed from disk to disk.
"""
import mmap
import os
import warnings

import numpy as np

from keras_sep import audio

CHUNKING_MODES = ("overlap", "spleeter")
# Chunks per network call that ``batch_size=None`` chooses from, by timing.
BATCH_CANDIDATES = (1, 4)
PRECISIONS = ("float32", "bfloat16")
_MAPPED_OUTPUT_BYTES = 1 << 24  # outputs from this size on are memory maps (see _output_array)


class _ChunkStream:
    """Turns input blocks into output blocks, one batch of chunks at a time.

    Positions are in the "padded" time line: ``frame_length`` zeros, then the
    input. Chunk ``c`` needs padded samples ``[c * hop, c * hop + segment)``
    and contributes to the same output stretch. Chunks run in order, so once
    chunk ``c`` is added everything before ``(c + 1) * hop`` is final; only
    the stretch the next chunk overlaps (the "tail") waits, and it is added
    in place into the next chunk's output rather than into a separate
    accumulator.
    """

    spare = 1 << 18  # room in the input buffer beyond one chunk (it grows for larger blocks)

    def __init__(self, separator, overlap, batch_size, run=None):
        model = separator.model
        self.model = model
        if run is None:
            run = lambda segments, weights: separator._run_segments(segments, weights, batch_size)  # noqa: E731
        self.run = run  # (segments, weights) -> {instrument: (chunks, segment, channels)}
        self.batch_size = batch_size
        self.overlap = overlap
        self.hop = model.chunk_hop(overlap) * model.frame_step
        self.segment = model.segment_length
        self.lead = model.frame_length
        self.channels = model.channels
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
            kind: np.asarray(model.chunk_weights(index, count, overlap), np.float32)[0]
            for kind, (index, count) in examples.items()
        }
        self.received = 0  # input samples seen
        self.next_chunk = 0
        self.tail = {name: np.zeros((0, self.channels), np.float32) for name in model.instruments}
        self.emitted = 0  # input-aligned output samples already returned

    def _ready_chunks(self, final):
        if final:
            total = self.model.num_chunks(self.received, self.overlap)
            return list(range(self.next_chunk, total))
        end = self.next_chunk * self.hop + self.end - self.begin
        last = (end - self.segment) // self.hop
        ready = list(range(self.next_chunk, last + 1)) if end >= self.segment else []
        # Whole batches only until the end: the input waits for the rest.
        return ready[: len(ready) - len(ready) % self.batch_size]

    def push(self, block, final=False):
        """Add input samples; return output samples that are now final."""
        if block is not None and len(block):
            self._append(block)
            self.received += len(block)
        chunks = self._ready_chunks(final)
        pieces = {name: [] for name in self.model.instruments}
        for start in range(0, len(chunks), self.batch_size):
            self._process(chunks[start : start + self.batch_size], final, pieces)
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
        total = self.model.num_chunks(self.received, self.overlap) if final else None
        first = self.next_chunk * self.hop  # padded position of buffer[begin]
        if self.segments is None or len(self.segments) != len(chunks):
            self.segments = np.zeros((len(chunks), self.segment, self.channels), np.float32)
        segments = self.segments  # reused: the network is done with it when run() returns
        for row, c in enumerate(chunks):
            begin = self.begin + c * self.hop - first
            piece = self.buffer[begin : min(begin + self.segment, self.end)]
            segments[row, : len(piece)] = piece
            segments[row, len(piece) :] = 0
        # Before the end is known, no chunk is the last one.
        return segments, self._weights(chunks, total or 1 << 30), first

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
        for name, values in finished.items():
            pieces[name].append(values[first : first + count])
        self.emitted += count


class _StatisticsStream(_ChunkStream):
    """The first pass of multichannel Wiener filtering: the same chunks as
    :class:`_ChunkStream`, but ``run`` returns their ``(covariance, power,
    peak)`` (:meth:`WaveformSeparator.wiener_statistics`), which are summed;
    no output."""

    def __init__(self, separator, overlap, batch_size, run):
        super().__init__(separator, overlap, batch_size, run)
        self.covariance = self.power = None
        self.peak = 0.0

    def _process(self, chunks, final, pieces):
        segments, weights, first = self._gather(chunks, final)
        covariance, power, peak = self.run(segments, weights)
        if self.covariance is None:
            self.covariance, self.power = covariance.astype(np.complex128), power.astype(np.float64)
        else:
            self.covariance += covariance
            self.power += power
        self.peak = max(self.peak, float(peak))
        self._advance(chunks, first)


class _SameLength:
    """Holds resampled output to the input's length: never more output than
    input samples seen so far (the excess waits), and at the end exactly as
    many (cut, or completed with zeros where resampling came up short)."""

    def __init__(self, instruments, channels):
        self.received = 0  # input samples, counted by Separator._model_blocks
        self.emitted = 0
        self.channels = channels
        self.pending = {n: np.zeros((0, channels), np.float32) for n in instruments}

    def take(self, out, last):
        joined = {n: np.concatenate([self.pending[n], v]) if len(self.pending[n]) else v for n, v in out.items()}
        allowed = self.received - self.emitted
        count = len(next(iter(joined.values())))
        if last and count < allowed:
            joined = {n: np.concatenate([v, np.zeros((allowed - count, self.channels), np.float32)]) for n, v in joined.items()}
        ready = {n: v[:allowed] for n, v in joined.items()}
        self.pending = {n: v[allowed:] for n, v in joined.items()}
        self.emitted += len(next(iter(ready.values())))
        return ready


class _Reiterable:
    """Blocks that can be read more than once: each iteration calls ``make``."""

    def __init__(self, make):
        self.make = make

    def __iter__(self):
        return iter(self.make())


class Separator:
    """Separate songs into stems with a :class:`WaveformSeparator`.

    Args:
        model: a ``WaveformSeparator``, a preset name such as
            ``"spleeter:2stems"``, or the path of a ``.keras`` file.
        chunking: ``"overlap"`` (default: chunks overlap by the model's
            ``overlap_frames`` and are cross-faded, no audible seams) or
            ``"spleeter"`` (Spleeter's own non-overlapping chunks, for
            output identical to Spleeter's).
        batch_size: chunks per network call, or ``None`` (default): for
            arrays (:meth:`separate`, :meth:`stream`) the faster of 1 and 4
            chunks on this machine, timed once at the first separation with
            the inference plan (several seconds) and cached with the
            operator forms; 1 when timing is off (``KERAS_SEP_TUNE=0``) or
            without the plan. :meth:`separate_to_file` (and the CLI) then
            run one chunk per call, so that their peak memory is the same
            for a 10-second file as for a 10-minute one (four chunks per
            call hold about 0.7 GB more). On two AMD EPYC (Zen 4) cores 4
            chunks per call ran 5-10 % faster than one; GPUs want larger
            batches (8–32), given explicitly.
        progress: show a progress bar; ``None`` shows one for inputs longer
            than a minute.
        fast: use the network's faster inference plan where it has one
            (:meth:`UNetSeparator.inference_function`, float32 models) and
            XLA for the STFT, and for masking with the inverse STFT. The
            plan copies the weights at the first separation: make a new
            ``Separator`` after changing them. On a new machine the first
            separation also times each layer's operator forms once (a few
            seconds, then cached; ``KERAS_SEP_TUNE=0`` skips it).
            ``False`` runs the Keras layers as they are.
        mwf: multichannel Wiener filtering (Spleeter's ``--mwf``, norbert's
            ``wiener`` with one EM iteration) instead of ratio masks below
            the cutoff: each instrument's spatial covariance is estimated
            over the whole song, then every chunk is filtered with it. It
            reads the input twice and runs the network twice (memory stays
            flat); :meth:`stream` then needs re-iterable blocks.
        precision: ``"float32"`` (default) or ``"bfloat16"``: the U-Nets'
            convolutions in bfloat16 (needs ``fast``), 2–3× faster on
            processors with bfloat16 matrix units (Intel AMX, AVX512_BF16)
            and slower on others; STFT, masks and stems stay float32. On
            Spleeter's example the stems stay within 49–55 dB SNR of
            Spleeter's float32 ones (float32: 100 dB).

    Example:

    >>> sep = Separator("spleeter:2stems")
    >>> stems = sep.separate("song.mp3")          # doctest: +SKIP
    >>> stems["vocals"].shape                      # doctest: +SKIP
    (479832, 2)
    """

    def __init__(self, model, chunking="overlap", batch_size=None, progress=None, fast=True, precision="float32", mwf=False):
        if isinstance(model, (str, os.PathLike)):
            model = _load_model(os.fspath(model))
        from keras_sep.models import WaveformSeparator

        if not isinstance(model, WaveformSeparator):
            hint = (
                ", a spectrogram network: wrap it, keras_sep.models.WaveformSeparator(network)"
                if hasattr(model, "instruments") else ""
            )
            raise TypeError(
                f"Separator needs a WaveformSeparator (waveform in, stems out), got {type(model).__name__}{hint}"
            )
        if chunking not in CHUNKING_MODES:
            raise ValueError(f"chunking must be one of {CHUNKING_MODES}, got {chunking!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision != "float32" and not fast:
            raise ValueError(f"precision={precision!r} runs the inference plan: it needs fast=True")
        if precision != "float32" and not _has_plan(model.spectrogram_model):
            net = model.spectrogram_model
            raise ValueError(f"precision={precision!r} needs a float32 network with an inference plan "
                             f"(a UNetSeparator), got {type(net).__name__} computing in {net.compute_dtype}")
        if precision == "bfloat16":
            from keras_sep.inference import autotune

            if autotune.has_bfloat16_units() is False:
                warnings.warn(
                    "precision='bfloat16': this processor has no bfloat16 instructions (AVX512_BF16, AMX, "
                    "Arm BF16) and no GPU is visible, so bfloat16 runs slower than float32 here",
                    RuntimeWarning,
                    stacklevel=2,
                )
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
        self.model = model
        self.precision = precision
        self.chunking = chunking
        # What was asked for, and (for None, once timed) what is used.
        self._requested_batch = self._batch_size = None if batch_size is None else int(batch_size)
        self.progress = progress
        self.fast = bool(fast)
        self.mwf = bool(mwf)
        self._pipelines = {}
        self._wiener_pipelines = {}
        self._networks = {}

    @property
    def instruments(self):
        return self.model.instruments

    @property
    def sample_rate(self):
        return self.model.sample_rate

    @property
    def overlap_frames(self):
        return 0 if self.chunking == "spleeter" else self.model.overlap_frames

    @property
    def batch_size(self):
        """Chunks per network call (chosen by timing at first use when the
        separator was made with ``batch_size=None``)."""
        if self._batch_size is None:
            self._batch_size = self._tuned_batch_size()
        return self._batch_size

    def _tuned_batch_size(self):
        from keras_sep.inference import autotune

        net = self.model.spectrogram_model
        if not (self.fast and _has_plan(net) and autotune.enabled()):
            return 1
        model = self.model
        count = max(BATCH_CANDIDATES)
        # Every candidate separates the same chunks, in count / b calls; its
        # plan is made only if the timing runs (not when the choice is cached).
        candidates = {
            str(b): (lambda s, w, b=b: [self._pipeline(b)(s[i : i + b], w[i : i + b]) for i in range(0, count, b)])
            for b in BATCH_CANDIDATES
        }

        def inputs():
            rng = np.random.default_rng(0)
            segments = rng.uniform(-0.5, 0.5, (count, model.segment_length, model.channels)).astype(np.float32)
            return segments, np.ones((count, model.chunk_frames), np.float32)

        # The network's shape and weights' layout decide the timing, not the weights.
        signature = (
            f"separator.batch:{type(net).__name__}:{len(model.instruments)}x{model.chunk_frames}x{net.bins}x{net.channels}"
            f":filters={'-'.join(map(str, net.filters))}:frame={model.frame_length}/{model.frame_step}:{self.precision}"
        )
        sizes = " and ".join(map(str, BATCH_CANDIDATES))
        note = f"timing {sizes} chunks per network call on this machine (once, cached in {autotune.table_path()})"
        kept = set(self._pipelines) | set(self._networks)  # made before the timing (a file's one chunk per call)
        choice = int(autotune.choose(signature, candidates, inputs, "1", rounds=3, compiled=True, note=note))
        # The plans only the timing made for the other candidates are no
        # longer needed; those made before it stay in use.
        kept.add(choice)
        self._pipelines = {b: p for b, p in self._pipelines.items() if b in kept}
        self._networks = {b: n for b, n in self._networks.items() if b in kept}
        return choice

    def tune(self):
        """Make the inference plan now (timing this machine's operator forms
        and, with ``batch_size=None``, the batch size, where not cached yet)
        instead of at the first separation.

        Returns:
            ``{"batch_size": int, "forms": {"encoder": [...], "decoder": [...]} or None}``
            (``None``: no inference plan, the Keras layers run).
        """
        batch = self.batch_size
        self._pipeline(batch)
        network = self._networks.get(batch)
        return {"batch_size": batch, "forms": getattr(network, "forms", None)}

    def _pipeline(self, batch):
        """The compiled chunk computation for calls of ``batch`` chunks:
        ``(segments, weights) -> {instrument: array}``."""
        if batch not in self._pipelines:
            import tensorflow as tf

            model = self.model
            network = self._network(batch)
            compiled = tf.function(
                lambda s, w: model.separate_segments(s, w, training=False, network=network, jit_compile=self.fast),
                input_signature=[
                    tf.TensorSpec((None, model.segment_length, model.channels), tf.float32),
                    tf.TensorSpec((None, model.chunk_frames), tf.float32),
                ],
                # The inference plan is plain TensorFlow: converting it with
                # AutoGraph would only add a second to the first call.
                autograph=network is None,
            )
            self._pipelines[batch] = lambda s, w: {name: value.numpy() for name, value in compiled(s, w).items()}
        return self._pipelines[batch]

    def _wiener_pipeline(self, batch):
        """The two compiled passes of multichannel Wiener filtering for calls
        of ``batch`` chunks: ``(segments, weights) -> [covariance, power,
        peak]`` and ``(segments, weights, R, scale) -> {instrument: array}``."""
        if batch not in self._wiener_pipelines:
            import tensorflow as tf

            network = self._network(batch)
            model = self.model
            net = model.spectrogram_model
            inputs = [
                tf.TensorSpec((None, model.segment_length, model.channels), tf.float32),
                tf.TensorSpec((None, model.chunk_frames), tf.float32),
            ]
            spatial = tf.TensorSpec((len(model.instruments), net.bins, model.channels, model.channels), tf.complex64)
            statistics = tf.function(
                lambda s, w: model.wiener_statistics(s, w, training=False, network=network, jit_compile=self.fast),
                input_signature=inputs,
                autograph=network is None,
            )
            filtered = tf.function(
                lambda s, w, r, k: model.separate_segments(
                    s, w, training=False, network=network, jit_compile=self.fast, wiener=(r, k)
                ),
                input_signature=inputs + [spatial, tf.TensorSpec((), tf.float32)],
                autograph=network is None,
            )
            self._wiener_pipelines[batch] = (
                lambda s, w: [value.numpy() for value in statistics(s, w)],
                lambda s, w, r, k: {name: value.numpy() for name, value in filtered(s, w, r, k).items()},
            )
        return self._wiener_pipelines[batch]

    def _network(self, batch):
        """The inference plan for calls of ``batch`` chunks (made once), or
        None: the Keras layers run."""
        if self.fast and batch not in self._networks:
            network = self._inference_network(batch)
            if network is not None:
                self._networks[batch] = network
        return self._networks.get(batch)

    def _run_segments(self, segments, weights, batch):
        return self._pipeline(batch)(segments, weights)

    def _inference_network(self, batch):
        from keras_sep.inference import inference_plan

        net = self.model.spectrogram_model
        if not _has_plan(net):
            return None
        # Time the layers' operator forms for the chunks this separator feeds
        # (once per machine, then cached).
        shape = (batch, self.model.chunk_frames, net.bins, net.channels)
        return inference_plan(net, tune_input_shape=shape, compute_dtype=self.precision)

    # --- in memory -----------------------------------------------------------

    def separate(self, waveform, sample_rate=None, offset=0.0, duration=None):
        """Separate an array ``(samples, channels)`` or an audio file.

        Args:
            waveform: array (1-D is mono) or a path.
            sample_rate: the array's rate; default the model's. Ignored for
                files, whose own rate is used.
            offset, duration: seconds; for files only.

        Returns:
            ``{instrument: float32 (samples, 2)}`` at the input's rate and
            length. Mono input is separated as identical left and right.
        """
        if isinstance(waveform, (str, os.PathLike)):
            name = os.fspath(waveform)
            reader = audio.AudioReader(name, offset=offset, duration=duration)
            rate, blocks, length = reader.sample_rate, _Reiterable(lambda: reader.blocks(1 << 18)), reader.frames
        else:
            name = "<array>"
            array = audio.check_waveform(waveform, name)
            if array.shape[1] > max(2, array.shape[0]):
                # (2, 441000) is a stereo clip the wrong way round, not
                # two samples of 441000 channels.
                raise audio.AudioError(
                    f"{name}: shape {array.shape} looks like (channels, samples); "
                    "pass (samples, channels), e.g. waveform.T"
                )
            rate = int(sample_rate or self.sample_rate)
            length = len(array)
            blocks = _Reiterable(lambda: (array[i : i + (1 << 18)] for i in range(0, len(array), 1 << 18)))
        # Blocks are copied into arrays of the expected length as they come,
        # so nothing but the outputs grows with the input's length.
        outputs = {n: _output_array(length, self.model.channels) for n in self.instruments}
        filled = 0
        for out in self.stream(blocks, rate, name=name, total=length):
            count = len(next(iter(out.values())))
            capacity = len(outputs[self.instruments[0]])
            if filled + count > capacity:
                # Resampling may round up, and a file only FFmpeg reads can
                # decode to more than its stated length (or state none):
                # grow geometrically, not by every block.
                outputs = {n: _grown(o, filled, max(filled + count, 2 * capacity)) for n, o in outputs.items()}
            for n, block in out.items():
                outputs[n][filled : filled + count] = block
            filled += count
        return {n: o[:filled] for n, o in outputs.items()}

    # --- streaming ------------------------------------------------------------

    def stream(self, blocks, sample_rate, name="<array>", total=None, batch_size=None):
        """Separate an iterable of ``(n, channels)`` blocks at ``sample_rate``.

        Yields dicts ``{instrument: (m, 2)}`` of finished output in order; the
        concatenation is the separation of the concatenated input.
        ``batch_size``: chunks per network call (default :attr:`batch_size`).
        With ``mwf=True`` the blocks are read twice: give a list (or another
        re-iterable), not an iterator.
        """
        import soxr

        rate = int(sample_rate)
        batch = batch_size or self.batch_size
        if self.mwf and iter(blocks) is blocks:
            raise TypeError(f"{name}: mwf=True reads the input twice: give re-iterable blocks (e.g. a list), not an iterator")
        passes = 2 if self.mwf else 1
        bar = self._progress_bar(total, rate, name, passes)
        run = None
        if self.mwf:
            from keras_sep.ops import wiener as wiener_ops

            statistics, filtered = self._wiener_pipeline(batch)
            first = _StatisticsStream(self, self.overlap_frames, batch, statistics)
            for block, last in self._model_blocks(blocks, rate, name, bar, warn=True):
                first.push(block, final=last)
            spatial, scale = wiener_ops.spatial_covariances(first.covariance, first.power, first.peak)
            scale = np.float32(scale)
            run = lambda segments, weights: filtered(segments, weights, spatial, scale)  # noqa: E731
        engine = _ChunkStream(self, self.overlap_frames, batch, run)
        channels = self.model.channels
        to_input = None
        if rate != self.sample_rate:
            to_input = {n: soxr.ResampleStream(self.sample_rate, rate, channels, dtype="float32", quality="HQ") for n in self.instruments}

        # Resampling there and back rounds twice (a few samples, all of them
        # for a 1-sample input): the output is held to the input's length.
        length = _SameLength(self.instruments, channels) if to_input is not None else None

        def finish(out, last):
            if to_input is None:
                return out
            return length.take({n: to_input[n].resample_chunk(v, last=last) for n, v in out.items()}, last)

        for block, last in self._model_blocks(blocks, rate, name, bar, warn=not self.mwf, counter=length):
            out = finish(engine.push(block, final=last), last)
            if last or any(len(v) for v in out.values()):
                yield out
        if bar is not None:
            bar.close()

    def _model_blocks(self, blocks, rate, name, bar, warn, counter=None):
        """The input at the model's rate and channels, as ``(block, last)``
        pairs; the last pair holds what the resampler still had (or None).
        ``counter``, a :class:`_SameLength`, counts the input's samples."""
        import soxr

        channels = self.model.channels
        to_model = soxr.ResampleStream(rate, self.sample_rate, channels, dtype="float32", quality="HQ") if rate != self.sample_rate else None
        seen = 0
        for block in blocks:
            if block is None or np.shape(block)[:1] == (0,):
                continue  # a reader may hand over nothing now and then
            block = audio.check_waveform(block, name)
            if counter is not None:
                counter.received += len(block)
            if warn and seen == 0 and block.shape[1] > channels:
                warnings.warn(
                    f"{name}: {block.shape[1]} channels; separating the first {channels} (as Spleeter and "
                    "Open-Unmix do): downmix it first to keep what only the others carry (a 5.1 centre)",
                    UserWarning,
                    stacklevel=3,
                )
            block = _fit_channels(block, channels)
            seen += len(block)
            if bar is not None:
                bar.update(len(block))
            if to_model is not None:
                block = to_model.resample_chunk(block)
            yield block, False
        if seen == 0:
            why = "" if name == "<array>" else " (an empty file, or an offset at or past its end)"
            raise audio.AudioError(f"{name}: no audio samples{why}")
        tail = to_model.resample_chunk(np.zeros((0, channels), np.float32), last=True) if to_model else None
        yield tail, True

    def _progress_bar(self, total, rate, name, passes=1):
        show = self.progress if self.progress is not None else (total or 0) > 60 * rate
        if not show:
            return None
        from tqdm.auto import tqdm

        # Samples read, over all passes (two with mwf: statistics, then separation).
        total = None if total is None else total * passes
        return tqdm(total=total, unit="sample", unit_scale=True, desc=os.path.basename(name), leave=False)

    def output_paths(self, path, output_dir, codec="wav", filename_format="{track}/{instrument}.{codec}"):
        """The files :meth:`separate_to_file` writes for ``path``:
        ``{instrument: path}``.

        ``filename_format`` is relative to ``output_dir`` and may use
        ``{track}`` (the input's name without extension), ``{foldername}``
        (the name of the folder the input is in, to keep ``a/01.mp3`` and
        ``b/01.mp3`` apart), ``{instrument}`` and ``{codec}``.

        Raises:
            ValueError: a field other than these, a malformed format, or one
                that gives several instruments the same file.
        """
        path = os.fspath(path)
        fields = {
            "track": os.path.splitext(os.path.basename(path))[0],
            "foldername": os.path.basename(os.path.dirname(os.path.abspath(path))),
            "codec": codec,
        }
        try:
            names = {n: filename_format.format(instrument=n, **fields) for n in self.instruments}
        except KeyError as error:
            raise ValueError(
                f"filename format {filename_format!r}: unknown field {{{error.args[0]}}}; "
                "use {track}, {foldername}, {instrument} and {codec}"
            ) from None
        except (ValueError, IndexError) as error:
            raise ValueError(f"filename format {filename_format!r}: {error}") from None
        targets = {n: os.path.join(output_dir, name) for n, name in names.items()}
        if len(set(targets.values())) != len(targets):
            raise ValueError(f"filename format {filename_format!r} gives the same file for several instruments")
        return targets

    def separate_to_file(
        self,
        path,
        output_dir,
        codec="wav",
        filename_format="{track}/{instrument}.{codec}",
        offset=0.0,
        duration=None,
        overwrite=False,
        bitrate=None,
    ):
        """Stream ``path`` through the separator into one file per instrument.

        Nothing is kept in memory beyond the current chunks; each output is
        written under a temporary name and renamed only when complete.
        ``codec`` and ``bitrate`` (lossy codecs only, bits/s such as
        ``"192k"``) are those of :class:`keras_sep.audio.AtomicWriter`;
        ``filename_format`` that of :meth:`output_paths`.

        Returns:
            ``{instrument: output path}``.
        """
        path = os.fspath(path)
        targets = self.output_paths(path, output_dir, codec, filename_format)
        existing = [t for t in targets.values() if os.path.exists(t)]
        if existing and not overwrite:
            raise FileExistsError(f"{path}: output {existing[0]} exists (use overwrite=True / --overwrite)")
        reader = audio.AudioReader(path, offset=offset, duration=duration)
        writers = {
            n: audio.AtomicWriter(t, reader.sample_rate, self.model.channels, codec, bitrate=bitrate)
            for n, t in targets.items()
        }
        entered = []
        try:
            for writer in writers.values():
                writer.__enter__()
                entered.append(writer)
            # One chunk per call unless told otherwise: batches would hold
            # more memory for long files than a short one ever needs.
            batch = self._requested_batch or 1
            blocks = _Reiterable(lambda: reader.blocks(1 << 18))
            stream = self.stream(blocks, reader.sample_rate, name=path, total=reader.frames, batch_size=batch)
            for out in stream:
                for n, block in out.items():
                    writers[n].write(block)
        except BaseException as error:
            # Last in, first out: the writer that made a folder cleans up
            # after the others have removed their files from it.
            for writer in reversed(entered):
                writer.__exit__(type(error), error, None)
            raise
        for writer in entered:
            writer.__exit__(None, None, None)
        return targets


def _output_array(frames, channels):
    """An uninitialised float32 ``(frames, channels)`` array for a whole
    output. Large ones live in an anonymous memory map, where NumPy's
    allocator would ask for transparent huge pages, whose compaction in a
    process that TensorFlow has fragmented cost up to 2 ms per MB here
    (8 % of a 5-minute separation)."""
    size = frames * channels * 4
    if size < _MAPPED_OUTPUT_BYTES:
        return np.empty((frames, channels), np.float32)
    if hasattr(mmap, "MAP_POPULATE"):
        # All pages at once: about 70 % of the cost of faulting them in one
        # at a time as the blocks arrive (Linux).
        memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    else:
        memory = mmap.mmap(-1, size)
    return np.frombuffer(memory, np.float32).reshape(frames, channels)


def _grown(array, filled, frames):
    """A new output of ``frames`` rows holding ``array[:filled]``."""
    grown = _output_array(frames, array.shape[1])
    grown[:filled] = array[:filled]
    return grown


def _has_plan(net):
    from keras_sep.inference import has_inference_plan

    return has_inference_plan(net)


def _fit_channels(block, channels):
    """Mono → duplicated; more channels than the model's → the first ones."""
    if block.shape[1] == channels:
        return block
    if block.shape[1] == 1:
        return np.repeat(block, channels, axis=1)
    if block.shape[1] > channels:
        return np.ascontiguousarray(block[:, :channels])
    raise audio.AudioError(f"cannot map {block.shape[1]} channels to {channels}")


def _load_model(name):
    if name.endswith((".keras", ".h5")) or os.path.exists(name):
        import zipfile

        import keras

        import keras_sep.models  # noqa: F401  (registers the classes)

        # Keras says "File not found" for a file that is there but is not
        # its zip archive: say what is wrong instead.
        if not os.path.exists(name):
            raise ValueError(f"{name}: no such model file (or preset)")
        if os.path.isdir(name):
            raise ValueError(f"{name}: is a directory, not a .keras model file")
        if not name.endswith(".h5") and not zipfile.is_zipfile(name):
            raise ValueError(f"{name}: not a .keras model file (Keras' zip archive)")
        try:
            return keras.saving.load_model(name)
        except Exception as error:
            raise ValueError(f"{name}: cannot load the model ({audio.one_line(error)})") from None
    from keras_sep import pretrained

    return pretrained.load_model(name)
