"""Separation without TensorFlow: a LiteRT (TensorFlow Lite) export of a
separator's network, run with XNNPACK, and its NumPy signal path.

:func:`keras_sep.export.export_litert` writes the export (a folder with
``separator.tflite`` and ``keras_sep.json``, the resolved config);
:class:`LiteRTSeparator` separates with it. Importing this package loads
numpy, soundfile and soxr, never TensorFlow.
"""
from keras_sep.litert.separator import (  # noqa: F401
    CONFIG_NAME,
    FORMAT,
    FORMAT_VERSION,
    MODEL_NAME,
    LiteRTSeparator,
    read_config,
)

__all__ = ["LiteRTSeparator", "read_config", "CONFIG_NAME", "MODEL_NAME", "FORMAT", "FORMAT_VERSION"]
