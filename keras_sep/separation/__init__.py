"""Waveform → stems for audio of any length, in bounded memory.

:class:`Separator` is the entry point; the modules under it are the
streaming engine (:mod:`.engine`), the resampling of blocks
(:mod:`.resampling`), the compiled chunk computations (:mod:`.pipelines`),
the output files (:mod:`.outputs`) and the options and their checks
(:mod:`.options`).
"""
from keras_sep.separation.pipelines import BATCH_CANDIDATES  # noqa: F401
from keras_sep.separation.options import (  # noqa: F401
    CHUNKING_MODES,
    DEFAULT_PHASE_ITERATIONS,
    PHASES,
    PRECISIONS,
)
from keras_sep.separation.separator import Separator  # noqa: F401

__all__ = ["Separator", "CHUNKING_MODES", "PRECISIONS", "PHASES", "DEFAULT_PHASE_ITERATIONS", "BATCH_CANDIDATES"]
