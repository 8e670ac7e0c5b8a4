"""Build and run the whole job: match files, separate them, write the dead letters."""
import logging
import os

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from keras_sep.beam import files
from keras_sep.beam.separate_fn import NAMESPACE
from keras_sep.beam.transform import SeparateFiles

logger = logging.getLogger(__name__)

FAILED_FILE = "failed.tsv"  # under the output prefix: "path<TAB>message" lines


def failed_path(output_prefix):
    """The dead-letter file of a job writing under ``output_prefix``."""
    return files.join(output_prefix, FAILED_FILE)


def separate_files(pattern, output_prefix, model="spleeter:2stems", runner="DirectRunner", pipeline_args=(),
                   **kwargs):
    """Separate every file matching ``pattern`` into stems under
    ``output_prefix`` with an Apache Beam pipeline, and wait for it.

    Args:
        pattern: file pattern Beam matches (``music/**/*.mp3``,
            ``gs://bucket/music/*.flac``).
        output_prefix: folder or URL prefix of the stems and of
            :data:`FAILED_FILE`, the files that could not be separated
            (one ``path<TAB>message`` line each; empty when none failed).
        model: preset name or ``.keras`` file the workers can read.
        runner: Beam runner (``DirectRunner``, ``DataflowRunner``,
            ``FlinkRunner``, ``SparkRunner``, ...).
        pipeline_args: more Beam options, as command-line flags
            (``["--project=p", "--region=europe-west1"]``).
        **kwargs: those of :class:`SeparateFiles` (``codec``, ``bitrate``,
            ``filename_format``, ``chunking``, ``batch_size``, ``overwrite``).

    Returns:
        ``{"separated": n, "skipped": n, "failed": n}``: tracks separated
        now, skipped because all their stems existed, and failed.

    Raises:
        ValueError: an unknown model or a bad filename format (before the
            job starts).
    """
    _check_model(model)
    transform = SeparateFiles(output_prefix, model, **kwargs)
    options = PipelineOptions([f"--runner={runner}", *pipeline_args])
    pipeline = beam.Pipeline(options=options)
    paths = pipeline | "Match" >> fileio.MatchFiles(pattern) | "Paths" >> beam.Map(lambda found: found.path)
    done = paths | "Separate files" >> transform
    stem, suffix = os.path.splitext(FAILED_FILE)
    done.failed | "Dead letters" >> beam.io.WriteToText(
        files.join(output_prefix, stem), file_name_suffix=suffix, num_shards=1, shard_name_template=""
    )
    result = pipeline.run()
    result.wait_until_finish()
    counts = _counts(result)
    if not any(counts.values()):
        logger.warning("no file matches %s", pattern)
    return counts


def _check_model(model):
    """A missing model stops the job before it starts, not on every worker."""
    from keras_sep import pretrained

    if model in pretrained.presets() or (files.is_local(model) and os.path.exists(model)):
        return
    if not files.is_local(model) and files.all_exist([model]):
        return
    raise ValueError(f"{model}: no such model file (or preset)")


def _counts(result):
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    counts = dict.fromkeys(("separated", "skipped", "failed"), 0)
    for counter in found:
        value = counter.committed if counter.committed is not None else counter.attempted
        counts[counter.key.metric.name] += int(value or 0)
    return counts
