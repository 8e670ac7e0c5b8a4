"""The :class:`SeparateFiles` transform: audio file paths → stems under a prefix."""
import apache_beam as beam
from apache_beam.utils.shared import Shared

from keras_sep.beam.separate_fn import FAILED, SeparateFileFn
from keras_sep.separation import outputs

_ANY = "\0"  # an instrument name no format can produce on its own


class SeparateFiles(beam.PTransform):
    """Separate a ``PCollection`` of audio file paths into stems.

    Each file is streamed through :meth:`keras_sep.Separator.separate_to_file`
    (the CLI's decoding, chunking, codecs and atomic writes) by a DoFn that
    loads the separator once per worker process. The paths are first
    grouped by the names their stems would get: that spreads the files over
    the workers (a fusion break after the file match) and finds inputs
    that would write the same stems (``a/01.mp3`` and ``b/01.mp3`` with the
    default names) before either does.

    Args:
        output_prefix: folder or URL prefix (``gs://bucket/stems``) for the stems.
        model: preset name (``"spleeter:2stems"``) or ``.keras`` file the
            workers can read (a ``gs://`` path is staged to each worker).
        codec, bitrate, filename_format, chunking, batch_size, overwrite:
            as for ``keras-sep separate``.

    Returns (from ``expand``): a ``DoOutputsTuple`` with ``separated``
    (``(path, {instrument: stem})``), ``skipped`` (paths whose stems all
    existed) and ``failed`` (``"path\\tmessage"`` lines).

    Example:

    >>> import apache_beam as beam                        # doctest: +SKIP
    >>> with beam.Pipeline() as p:                         # doctest: +SKIP
    ...     paths = p | beam.Create(["songs/a.mp3", "songs/b.flac"])
    ...     done = paths | SeparateFiles("stems", "spleeter:2stems")
    ...     done.failed | beam.io.WriteToText("stems/failed", ".tsv")
    """

    def __init__(self, output_prefix, model, codec="wav", bitrate=None, filename_format="{track}/{instrument}.{codec}",
                 chunking="overlap", batch_size=None, overwrite=False):
        super().__init__()
        # A bad format stops the job here, not on every worker.
        outputs.output_paths("track.wav", "", ("vocals", "accompaniment"), codec, filename_format)
        self.filename_format = filename_format
        self.codec = codec
        self._fn = SeparateFileFn(
            output_prefix, model, Shared(), codec=codec, bitrate=bitrate, filename_format=filename_format,
            chunking=chunking, batch_size=batch_size, overwrite=overwrite,
        )

    def expand(self, paths):
        return (
            paths
            | "Key by output name" >> beam.Map(_keyed, self.codec, self.filename_format)
            | "Group same outputs" >> beam.GroupByKey()
            | "Separate" >> beam.ParDo(self._fn).with_outputs(FAILED, "skipped", main="separated")
        )


def _keyed(path, codec, filename_format):
    """``(name of path's stems with the instrument left open, path)``."""
    return outputs.output_paths(path, "", (_ANY,), codec, filename_format)[_ANY], path
