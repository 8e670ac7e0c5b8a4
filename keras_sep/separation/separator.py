"""The :class:`Separator` facade: songs of any length → stems, in bounded memory."""
import os

import numpy as np

from keras_sep.separation import options, outputs, pipelines
from keras_sep.separation.engine import ChunkStream, StatisticsStream
from keras_sep.separation.resampling import input_blocks, model_blocks, progress_bar, through

class Separator:
    """Separate songs into stems with a :class:`WaveformSeparator` or an
    :class:`OpenUnmixSeparator`.

    It runs the model chunk by chunk: it keeps only the stretch of input the
    next chunks need and the overlap-add tail of the output, so its memory
    does not grow with the length of the audio. Files are streamed from disk
    to disk.

    Args:
        model: a ``WaveformSeparator`` or an ``OpenUnmixSeparator`` (which
            takes ``chunking="overlap"``, float32 and the mixture phase
            only, and filters with its own Wiener filter, not ``mwf``);
            :meth:`from_preset` loads one from a preset name such as
            ``"spleeter:2stems"`` or ``"umxhq"``, or a ``.keras`` file.
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
            (:func:`keras_sep.inference.inference_plan`, float32 models;
            for Open-Unmix on a CPU,
            :class:`keras_sep.inference.open_unmix.OpenUnmixInference`) and
            XLA for the STFT, and for masking with the inverse STFT. The
            plan copies the weights at the first separation: make a new
            ``Separator`` after changing them. On a new machine the first
            separation also times each layer's operator forms once (a few
            seconds, then cached; ``KERAS_SEP_TUNE=0`` skips it).
            ``False`` runs the Keras layers as they are.
        precision: ``"float32"`` (default) or ``"bfloat16"``: the U-Nets'
            convolutions in bfloat16 (needs ``fast``), 2–3× faster on
            processors with bfloat16 matrix units (Intel AMX, AVX512_BF16)
            and slower on others; STFT, masks and stems stay float32. On
            Spleeter's example the stems stay within 49–55 dB SNR of
            Spleeter's float32 ones (float32: 100 dB).
        mwf: multichannel Wiener filtering (Spleeter's ``--mwf``, norbert's
            ``wiener`` with one EM iteration) instead of ratio masks below
            the cutoff: each instrument's spatial covariance is estimated
            over the whole song, then every chunk is filtered with it. It
            reads the input twice and runs the network twice (memory stays
            flat); :meth:`stream` then needs re-iterable blocks.
        phase: ``"mixture"`` (default: each stem keeps the mixture's phase,
            or the Wiener estimate's with ``mwf``) or ``"griffin_lim"``:
            fast Griffin–Lim (momentum 0.99) re-estimates each stem's phase
            from its magnitude, starting from the mixture's (the Wiener
            estimate's with ``mwf``), chunk by chunk like the rest; see
            docs/separation.md for when that helps.
        phase_iterations: Griffin–Lim iterations with
            ``phase="griffin_lim"`` (default
            :data:`DEFAULT_PHASE_ITERATIONS`); each costs about two STFTs
            of every stem.

    Example:

    A pretrained preset on a song (the weights are downloaded once):

    >>> sep = Separator.from_preset("spleeter:2stems")  # doctest: +SKIP
    >>> stems = sep.separate("song.mp3")                # doctest: +SKIP
    >>> stems["vocals"].shape                           # doctest: +SKIP
    (479832, 2)

    A tiny untrained model on an array: its masks sum to one, so the stems
    add up to the mixture:

    >>> import numpy as np
    >>> from keras_sep.models import UNetSeparator, WaveformSeparator
    >>> net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    >>> model = WaveformSeparator(net, frame_length=64, frame_step=16,
    ...                           overlap_frames=4, mask_extension="average")
    >>> sep = Separator(model, batch_size=1)
    >>> mixture = np.random.default_rng(0).normal(size=(3000, 2)).astype("float32")
    >>> stems = sep.separate(mixture)
    >>> stems["vocals"].shape
    (3000, 2)
    >>> bool(np.allclose(stems["vocals"] + stems["accompaniment"], mixture, atol=1e-5))
    True
    """

    def __init__(self, model, chunking="overlap", batch_size=None, progress=None, fast=True, precision="float32", mwf=False,
                 phase="mixture", phase_iterations=None):
        phase_iterations = options.check(model, chunking, batch_size, fast, precision, phase, phase_iterations)
        if mwf and not hasattr(model, "spectrogram_model"):
            raise ValueError("mwf=True is Spleeter's Wiener filter; an Open-Unmix model filters with its own (niter)")
        self.model = model
        self.precision = precision
        self.chunking = chunking
        # What was asked for, and (for None, once timed) what is used.
        self._requested_batch = self._batch_size = None if batch_size is None else int(batch_size)
        self.progress = progress
        self.fast = bool(fast)
        self.mwf = bool(mwf)
        self.phase = phase
        self.phase_iterations = int(phase_iterations)
        self._pipelines = pipelines.Pipelines(
            model, fast=self.fast, precision=precision, phase_iterations=self.phase_iterations
        )

    @classmethod
    def from_preset(cls, preset, local_dir=None, **kwargs):
        """A ``Separator`` for a preset name (``"spleeter:2stems"``) or the
        path of a ``.keras`` file, loaded by
        :func:`keras_sep.pretrained.load_model`; ``kwargs`` are the
        constructor's (``chunking``, ``batch_size``, ...), ``local_dir``
        the folder to fetch a preset's weights from first."""
        from keras_sep import pretrained

        model = pretrained.load_model(preset, local_dir=local_dir)
        if isinstance(model, dict):  # an Open-Unmix preset's {target: OpenUnmix}
            model = open_unmix_model(preset, model)
        return cls(model, **kwargs)

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
            self._batch_size = self._pipelines.tuned_batch_size()
        return self._batch_size

    def tune(self):
        """Make the inference plan now (timing this machine's operator forms
        and, with ``batch_size=None``, the batch size, where not cached yet)
        instead of at the first separation.

        Returns:
            ``{"batch_size": int, "forms": {"encoder": [...], "decoder": [...]} or None}``
            (``None``: no inference plan, the Keras layers run).
        """
        # Ahead of time: all of it, where a first separation times only
        # for a few seconds and leaves the rest to later runs.
        with pipelines.tuning_without_budget():
            batch = self.batch_size
            # Files run one chunk per call: its plan is tuned too.
            for size in sorted({batch, 1}):
                self._pipelines.network(size)
        return {"batch_size": batch, "forms": self._pipelines.forms(batch)}

    def chunk_module(self):
        """The compiled computation of one chunk per call, as a ``tf.Module``
        that ``tf.saved_model.save`` keeps whole: its ``separate`` maps
        ``segments (chunks, segment_length, channels)`` and cross-fade
        ``weights (chunks, chunk_frames)``, float32, to ``{instrument:
        (chunks, segment_length, channels)}``, as :meth:`separate_to_file`
        runs it (plan, precision, phase). What
        :func:`keras_sep.export.export_plan` saves; not for ``mwf=True``,
        whose chunks also need the song's statistics."""
        if self.mwf:
            raise ValueError("mwf=True filters each chunk with the whole song's statistics: no one-chunk computation")
        return self._pipelines.module(1)

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
        name, rate, blocks, length = input_blocks(waveform, sample_rate or self.sample_rate, offset, duration)
        stream = self.stream(blocks, rate, name=name, total=length)
        return outputs.collect(stream, self.instruments, self.model.channels, length)

    # --- streaming ------------------------------------------------------------

    def stream(self, blocks, sample_rate, name="<array>", total=None, batch_size=None):
        """Separate an iterable of ``(n, channels)`` blocks at ``sample_rate``.

        Yields dicts ``{instrument: (m, 2)}`` of finished output in order; the
        concatenation is the separation of the concatenated input.
        ``batch_size``: chunks per network call (default :attr:`batch_size`).
        With ``mwf=True`` the blocks are read twice: give a list (or another
        re-iterable), not an iterator.
        """
        rate = int(sample_rate)
        batch = batch_size or self.batch_size
        if self.mwf and iter(blocks) is blocks:
            raise TypeError(f"{name}: mwf=True reads the input twice: give re-iterable blocks (e.g. a list), not an iterator")
        bar = progress_bar(self.progress, total, rate, name, passes=2 if self.mwf else 1)
        model = self.model
        # Looked up at each call: the plan is made at the first chunk, not
        # before the input has shown that it holds samples.
        run = lambda segments, weights: self._pipelines.pipeline(batch)(segments, weights)  # noqa: E731
        if self.mwf:
            run = self._wiener_run(blocks, rate, name, bar, batch)
        engine = ChunkStream(model, self.overlap_frames, batch, run)
        yield from through(engine, blocks, rate, self.sample_rate, self.instruments, model.channels, name, bar,
                           warn=not self.mwf)
        if bar is not None:
            bar.close()

    def _wiener_run(self, blocks, rate, name, bar, batch):
        """The first pass of Wiener filtering over all of ``blocks``; returns
        the second pass's chunk computation, filtering with what it found."""
        from keras_sep.ops import wiener as wiener_ops

        statistics, filtered = self._pipelines.wiener(batch)
        first = StatisticsStream(self.model, self.overlap_frames, batch, statistics)
        for block, last in model_blocks(blocks, rate, self.sample_rate, self.model.channels, name, bar, warn=True):
            first.push(block, final=last)
        spatial, scale = wiener_ops.spatial_covariances(first.covariance, first.power, first.peak)
        scale = np.float32(scale)
        return lambda segments, weights: filtered(segments, weights, spatial, scale)

    # --- files ----------------------------------------------------------------

    def output_paths(self, path, output_dir, codec="wav", filename_format="{track}/{instrument}.{codec}"):
        """The files :meth:`separate_to_file` writes for ``path``:
        ``{instrument: path}`` (see :func:`keras_sep.separation.outputs.output_paths`
        for ``filename_format``'s fields).

        Raises:
            ValueError: an unknown field, a malformed format, or one that
                gives several instruments the same file.
        """
        return outputs.output_paths(path, output_dir, self.instruments, codec, filename_format)

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
        written under a temporary name and renamed only when all are
        complete. ``codec`` and ``bitrate`` (lossy codecs only, bits/s such
        as ``"192k"``) are those of :class:`keras_sep.audio.AtomicWriter`;
        ``filename_format`` that of :meth:`output_paths`.

        Returns:
            ``{instrument: output path}``.

        Example:

        >>> import os
        >>> import tempfile
        >>> import numpy as np
        >>> import soundfile
        >>> from keras_sep.models import UNetSeparator, WaveformSeparator
        >>> net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
        >>> model = WaveformSeparator(net, frame_length=64, frame_step=16, overlap_frames=4)
        >>> sep = Separator(model)
        >>> folder = tempfile.TemporaryDirectory()
        >>> song = os.path.join(folder.name, "mix.wav")
        >>> soundfile.write(song, np.zeros((3000, 2), "float32"), 44100)
        >>> targets = sep.separate_to_file(song, os.path.join(folder.name, "stems"))
        >>> sorted(os.path.relpath(t, folder.name) for t in targets.values())
        ['stems/mix/accompaniment.wav', 'stems/mix/vocals.wav']
        >>> soundfile.info(targets["vocals"]).frames
        3000
        >>> folder.cleanup()
        """
        path = os.fspath(path)
        targets = outputs.unwritten_paths(path, output_dir, self.instruments, codec, filename_format, overwrite)
        _, rate, blocks, length = input_blocks(path, None, offset, duration)
        # One chunk per call unless told otherwise: batches would hold
        # more memory for long files than a short one ever needs.
        batch = self._requested_batch or 1
        with outputs.StemWriters(targets, rate, self.model.channels, codec, bitrate=bitrate) as writers:
            for out in self.stream(blocks, rate, name=path, total=length, batch_size=batch):
                writers.write(out)
        return targets


def open_unmix_model(preset, networks):
    """An Open-Unmix preset's target networks behind its signal path and
    Wiener filter (the preset's ``signal`` and ``wiener`` settings)."""
    from keras_sep import pretrained
    from keras_sep.models import OpenUnmixSeparator

    spec = pretrained.get_preset(preset)
    signal = spec["signal"]
    return OpenUnmixSeparator(
        networks, sample_rate=signal["sample_rate"], n_fft=signal["frame_length"], n_hop=signal["frame_step"],
        **spec.get("wiener", {}),
    )
