"""Catalogue-scale separation on Apache Beam (``pip install keras-sep[beam]``).

:func:`separate_files` runs the whole job (``keras-sep separate-beam``);
:class:`SeparateFiles` is the transform for a pipeline of one's own. Each
worker process loads the separator once and streams every file through
:meth:`keras_sep.Separator.separate_to_file`; see docs/beam.md.
"""
from keras_sep.beam.pipeline import FAILED_FILE, failed_path, separate_files  # noqa: F401
from keras_sep.beam.transform import SeparateFiles  # noqa: F401

__all__ = ["SeparateFiles", "separate_files", "failed_path", "FAILED_FILE"]
