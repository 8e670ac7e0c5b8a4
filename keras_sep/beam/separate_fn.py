"""The DoFn that separates one audio file into stems under an output prefix."""
import logging
import os
import tempfile
import threading

import apache_beam as beam

from keras_sep.audio import one_line
from keras_sep.beam import files

logger = logging.getLogger(__name__)

NAMESPACE = "keras_sep"  # of the job's counters: separated, skipped, failed
FAILED = "failed"  # the tag of the dead-letter output


class _StagedFileError(Exception):
    """A staged copy of a remote file failed; the message names the remote file."""


class _Loaded:
    """A separator and the lock that runs one separation at a time with it.

    One per worker process (``Shared``): TensorFlow's kernels already use
    every core for one song, so two songs at once in a process would only
    hold twice the memory. Downloads and uploads run outside the lock and
    overlap with another thread's separation.
    """

    def __init__(self, separator, folder):
        self.separator = separator
        self.lock = threading.Lock()
        self._folder = folder  # keeps a staged model file alive

    @classmethod
    def load(cls, model, chunking, batch_size):
        from keras_sep.separation import Separator

        folder, local = None, model
        if not files.is_local(model):
            folder = tempfile.TemporaryDirectory(prefix="keras-sep-model-")
            local = files.stage_in(model, folder.name)
        separator = Separator.from_preset(local, chunking=chunking, batch_size=batch_size, progress=False)
        logger.info("loaded separator %s (%s)", model, ", ".join(separator.instruments))
        return cls(separator, folder)


class SeparateFileFn(beam.DoFn):
    """Separate each input file into one file per stem under ``output_prefix``.

    The input elements are ``(output key, [paths])`` groups from
    :class:`keras_sep.beam.SeparateFiles`: paths whose stems would have the
    same names. The first path (sorted) of a group is separated; the others
    go to the ``failed`` output, as does every file that cannot be
    separated, as ``"path\\tmessage"`` lines. A track whose stems all exist
    is skipped (``skipped`` output) unless ``overwrite``; the main output
    is ``(path, {instrument: stem path})`` for each separated track.

    Args:
        output_prefix: folder or URL prefix (``gs://bucket/stems``).
        model: preset name or ``.keras`` file (local to the workers, or on
            any filesystem Beam reads).
        shared: an ``apache_beam.utils.shared.Shared`` made at pipeline
            construction: the separator is loaded once per worker process.
        codec, bitrate, filename_format, chunking, batch_size: as for
            :meth:`keras_sep.Separator.separate_to_file` and
            :class:`keras_sep.Separator`.
        overwrite: separate tracks whose stems exist again.
    """

    def __init__(self, output_prefix, model, shared, codec="wav", bitrate=None,
                 filename_format="{track}/{instrument}.{codec}", chunking="overlap", batch_size=None, overwrite=False):
        self.output_prefix = output_prefix
        self.model = model
        self.codec = codec
        self.bitrate = bitrate
        self.filename_format = filename_format
        self.chunking = chunking
        self.batch_size = batch_size
        self.overwrite = overwrite
        self._shared = shared
        self._loaded = None
        self._counters = {n: beam.metrics.Metrics.counter(NAMESPACE, n) for n in ("separated", "skipped", "failed")}

    def setup(self):
        key = (self.model, self.chunking, self.batch_size)
        self._loaded = self._shared.acquire(lambda: _Loaded.load(*key), tag=repr(key))

    def process(self, element):
        _, paths = element
        first, *others = sorted(paths)
        for other in others:
            self._counters["failed"].inc()
            yield beam.pvalue.TaggedOutput(
                FAILED, f"{other}\tits stems would have the names of {first}'s; "
                "name outputs apart with {foldername} in the filename format",
            )
        try:
            targets = self._separate(first)
        except Exception as error:  # whatever one file makes a decoder or the model raise: that file fails
            logger.debug("separating %s failed", first, exc_info=True)
            self._counters["failed"].inc()
            yield beam.pvalue.TaggedOutput(FAILED, f"{first}\t{one_line(error)}")
            return
        if targets is None:
            self._counters["skipped"].inc()
            yield beam.pvalue.TaggedOutput("skipped", first)
        else:
            self._counters["separated"].inc()
            yield first, targets

    def _separate(self, path):
        """Separate ``path``; ``{instrument: stem}``, or None where all stems exist."""
        separator = self._loaded.separator
        relative = separator.output_paths(path, "", self.codec, self.filename_format)
        targets = {n: files.join(self.output_prefix, r) for n, r in relative.items()}
        if not self.overwrite and files.all_exist(targets.values()):
            return None
        with tempfile.TemporaryDirectory(prefix="keras-sep-") as folder:
            local = path if files.is_local(path) else files.stage_in(path, folder)
            remote = not files.is_local(self.output_prefix)
            output_dir = os.path.join(folder, "stems") if remote else self.output_prefix
            try:
                with self._loaded.lock:
                    # Stems left from an unfinished run are replaced: the
                    # track counts as done only when all of them exist.
                    written = separator.separate_to_file(
                        local, output_dir, codec=self.codec, filename_format=self.filename_format,
                        overwrite=True, bitrate=self.bitrate,
                    )
            except Exception as error:
                if local == path:
                    raise
                # The message names the file the user gave, not its staged copy.
                raise _StagedFileError(one_line(error).replace(local, path)) from error
            if remote:
                files.publish(written, targets)
        return targets
