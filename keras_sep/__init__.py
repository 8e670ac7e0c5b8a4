"""keras_sep: Keras 3 encoder-decoder audio models and music source separation.

Submodules are imported on first use so that ``keras-sep --help`` and
``import keras_sep`` stay instant; TensorFlow is loaded only when a
submodule that needs it is touched.
"""
import importlib
import os

# Keras 3 picks its backend at import time; keras_sep is TensorFlow-only.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# TensorFlow's default CPU allocator hands every buffer over 32 MB (glibc's
# largest mmap threshold) to a fresh mmap, so a chunk's spectra and inverse
# FFT frames page-fault anew on every call: on a 2-vCPU VM that was 100 ms
# of a 420 ms chunk. The BFC allocator keeps freed buffers for reuse. It is
# read when TensorFlow makes its first CPU tensor, so this works even after
# `import tensorflow`, but not after TensorFlow has run an op. Set the
# variable to "false" to keep TensorFlow's default.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

__version__ = "0.1.0"

_SUBMODULES = (
    "ops",
    "layers",
    "models",
    "audio",
    "data",
    "losses",
    "training",
    "separation",
    "evaluation",
    "pretrained",
    "export",
)
_ATTRIBUTES = {"Separator": "separation"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _ATTRIBUTES:
        module = importlib.import_module(f"{__name__}.{_ATTRIBUTES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + list(_ATTRIBUTES))
