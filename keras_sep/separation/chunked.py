"""What the runners of exported separators share: songs in, stems out, chunk by chunk.

A runner (:class:`keras_sep.litert.LiteRTSeparator`,
:class:`keras_sep.separation.saved_plan.SavedPlanSeparator`) holds a
network that separates one batch of chunks; this base streams arrays and
files through it with the chunks, cross-fades, resampling and
all-or-nothing stem files of :class:`keras_sep.Separator`.
"""
import os

from keras_sep.separation import outputs
from keras_sep.separation.engine import ChunkStream
from keras_sep.separation.options import CHUNKING_MODES
from keras_sep.separation.resampling import input_blocks, progress_bar, through

# The config an export keeps beside its network.
CONFIG_NAME = "keras_sep.json"


def read_export_config(config_path, name, format_name, format_version, kind, again):
    """The JSON config at ``config_path`` of the export ``name`` (as messages
    show it): a ``kind`` (e.g. ``"LiteRT export"``) of ``format_name`` and
    ``format_version``; ``again`` says what to do about another version.

    Raises:
        ValueError: unreadable, not a dict of that format, or another version.

    Example:

    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "keras_sep.json")
    >>> with open(path, "w") as handle:
    ...     json.dump({"format": "keras_sep.plan", "format_version": 2}, handle)
    >>> read_export_config(path, "plans/x", "keras_sep.plan", 1, "saved plan", "save the plan again")
    Traceback (most recent call last):
    ...
    ValueError: ...keras_sep.json: format_version 2, this keras_sep runs 1; save the plan again
    >>> read_export_config(path, "plans/x", "keras_sep.plan", 2, "saved plan", "")["format"]
    'keras_sep.plan'
    """
    import json

    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        from keras_sep.audio import one_line

        raise ValueError(f"{name}: not a {kind} ({one_line(error)})") from None
    if not isinstance(config, dict) or config.get("format") != format_name:
        raise ValueError(f"{config_path}: not a keras_sep {kind} config (format {format_name!r})")
    if config.get("format_version") != format_version:
        raise ValueError(
            f"{config_path}: format_version {config.get('format_version')!r}, this keras_sep runs "
            f"{format_version}; {again}"
        )
    return config


class ChunkedSeparator:
    """Base of the separators that run an export's chunk computation.

    Subclasses set ``config`` (the export's resolved ``keras_sep.json``,
    with ``sample_rate`` and ``overlap_frames``), ``chunks`` (its
    :class:`~keras_sep.separation.geometry.ChunkGeometry`) and implement
    ``_separate_chunks(segments (chunks, segment_length, channels), weights
    (chunks, chunk_frames)) -> {instrument: (chunks, segment_length,
    channels)}``; :meth:`_setup` takes the common arguments.
    """

    batch_size = 1  # chunks per call of _separate_chunks

    def _setup(self, config, chunking, progress):
        self.config = config
        chunking = config.get("chunking", "overlap") if chunking is None else chunking
        if chunking not in CHUNKING_MODES:
            raise ValueError(f"chunking must be one of {CHUNKING_MODES}, got {chunking!r}")
        self.chunking = chunking
        self.progress = progress

    @property
    def instruments(self):
        return self.chunks.instruments

    @property
    def sample_rate(self):
        return int(self.config["sample_rate"])

    @property
    def overlap_frames(self):
        return 0 if self.chunking == "spleeter" else int(self.config["overlap_frames"])

    # --- in memory -----------------------------------------------------------

    def separate(self, waveform, sample_rate=None, offset=0.0, duration=None):
        """Separate an array ``(samples, channels)`` or an audio file, as
        :meth:`keras_sep.Separator.separate` does: ``{instrument: float32
        (samples, channels)}`` at the input's rate and length."""
        name, rate, blocks, length = input_blocks(waveform, sample_rate or self.sample_rate, offset, duration)
        stream = self.stream(blocks, rate, name=name, total=length)
        return outputs.collect(stream, self.instruments, self.chunks.channels, length)

    # --- streaming ------------------------------------------------------------

    def stream(self, blocks, sample_rate, name="<array>", total=None):
        """Separate an iterable of ``(n, channels)`` blocks at ``sample_rate``;
        yields ``{instrument: (m, channels)}`` of finished output in order."""
        rate = int(sample_rate)
        bar = progress_bar(self.progress, total, rate, name)
        engine = ChunkStream(self.chunks, self.overlap_frames, self.batch_size, self._separate_chunks)
        yield from through(engine, blocks, rate, self.sample_rate, self.instruments, self.chunks.channels, name, bar)
        if bar is not None:
            bar.close()

    # --- files ----------------------------------------------------------------

    def output_paths(self, path, output_dir, codec="wav", filename_format="{track}/{instrument}.{codec}"):
        """As :meth:`keras_sep.Separator.output_paths`."""
        return outputs.output_paths(path, output_dir, self.instruments, codec, filename_format)

    def separate_to_file(self, path, output_dir, codec="wav", filename_format="{track}/{instrument}.{codec}",
                         offset=0.0, duration=None, overwrite=False, bitrate=None):
        """Stream ``path`` into one file per instrument, as
        :meth:`keras_sep.Separator.separate_to_file` does (the same names,
        codecs and all-or-nothing writes); returns ``{instrument: path}``."""
        path = os.fspath(path)
        targets = outputs.unwritten_paths(path, output_dir, self.instruments, codec, filename_format, overwrite)
        _, rate, blocks, length = input_blocks(path, None, offset, duration)
        with outputs.StemWriters(targets, rate, self.chunks.channels, codec, bitrate=bitrate) as writers:
            for out in self.stream(blocks, rate, name=path, total=length):
                writers.write(out)
        return targets
