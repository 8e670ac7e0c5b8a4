"""Waveform → stems for audio of any length, in bounded memory.

:class:`Separator` is the entry point; the modules under it are the
streaming engine (:mod:`.engine`), the resampling of blocks
(:mod:`.resampling`), the compiled chunk computations (:mod:`.pipelines`)
and the output files (:mod:`.outputs`).
"""
from keras_sep.separation.pipelines import BATCH_CANDIDATES  # noqa: F401
from keras_sep.separation.separator import (  # noqa: F401
    CHUNKING_MODES,
    DEFAULT_PHASE_ITERATIONS,
    PHASES,
    PRECISIONS,
    Separator,
)

__all__ = ["Separator", "CHUNKING_MODES", "PRECISIONS", "PHASES", "DEFAULT_PHASE_ITERATIONS", "BATCH_CANDIDATES"]
