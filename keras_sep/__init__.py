"""keras_sep: Keras 3 encoder-decoder audio models and music source separation.

Submodules are imported on first use so that ``keras-sep --help`` and
``import keras_sep`` stay instant; TensorFlow is loaded only when a
submodule that needs it is touched.

Importing it changes nothing in the host process: no environment variables,
allocators or log settings. Keras must run on TensorFlow (Keras' default, or
``KERAS_BACKEND=tensorflow``); :mod:`keras_sep.runtime` holds the
process-wide settings a program may opt into.
"""
import importlib

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
    "runtime",
    "litert",
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
