"""How the ``keras-sep`` command sets up its own process (the library never does).

Its messages: keras_sep's log records and Python warnings as one
``keras-sep: ...`` line each on stderr. TensorFlow: loaded with the BFC CPU
allocator, without its start-up notices unless ``--verbose``, and with Keras
spared its optional imports.
"""
import contextlib
import logging
import sys
import warnings

# Named, not __name__ of keras_sep.cli: `python -m keras_sep.cli` runs that
# module as __main__, outside the "keras_sep" logger that gets the handler.
logger = logging.getLogger("keras_sep.cli")


class _Formatter(logging.Formatter):
    """``keras-sep: message``; warnings say so, and debug lines name their logger."""

    def format(self, record):
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.WARNING:
            message = f"warning: {message}"
        elif record.levelno < logging.INFO:
            message = f"[{record.name}] {message}"
        return f"keras-sep: {message}"


@contextlib.contextmanager
def messages_to_stderr(verbose):
    """For one command: keras_sep's log records (INFO, or DEBUG with
    --verbose) and Python warnings as ``keras-sep:`` lines on stderr. The
    logger is restored afterwards, so that main() called from a program
    leaves that program's logging as it was."""
    package = logging.getLogger("keras_sep")
    saved = package.level, package.propagate
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if verbose else logging.INFO)
    package.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _log_warning
            yield
    finally:
        package.removeHandler(handler)
        package.setLevel(saved[0])
        package.propagate = saved[1]


def _log_warning(message, category, filename, lineno, file=None, line=None):
    from keras_sep.audio import one_line

    logger.warning("%s", one_line(message))


# Keras imports these, when installed, only for its scikit-learn wrappers and
# its image-gallery plot, which no command uses: 1-2 s of every start-up.
_KERAS_OPTIONAL_IMPORTS = ("sklearn", "matplotlib")


def _import_keras_lean():
    """Import Keras (and TensorFlow) without its optional scikit-learn and
    matplotlib imports; afterwards both import as usual (``--plot`` loads
    matplotlib when it draws). Nothing is changed if Keras or either module
    is imported already."""
    if "keras" in sys.modules:
        return
    names = [name for name in _KERAS_OPTIONAL_IMPORTS if name not in sys.modules]
    for name in names:
        sys.modules[name] = None  # makes Keras' "try: import ..." take its fallback
    try:
        import keras  # noqa: F401
    finally:
        for name in names:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def _import_tensorflow_alone():
    """Import TensorFlow without the Keras it loads eagerly (0.4 s), for a
    command that runs a saved plan only; Keras still imports later if
    asked for. Nothing is changed if TensorFlow is imported already."""
    if "tensorflow" in sys.modules:
        return
    blocked = "keras" not in sys.modules
    if blocked:
        sys.modules["keras"] = None  # TensorFlow's own "try: import keras.src.optimizers" takes its fallback
    try:
        import tensorflow as tf
    finally:
        if blocked and sys.modules.get("keras", 0) is None:
            del sys.modules["keras"]
    # TensorFlow prepends the folders of Keras' tf.keras API to its package
    # path; without Keras found they are None, which no import may see.
    tf.__path__[:] = [entry for entry in tf.__path__ if entry is not None]


def start_tensorflow(verbose, keras=True):
    """Load TensorFlow for a command: with the BFC CPU allocator (unless the
    environment says otherwise, or main() runs inside a program whose
    TensorFlow is loaded already: its allocator is not ours to change) and,
    unless ``verbose``, without TensorFlow's and CUDA's start-up notices.
    With ``keras=False`` Keras is not imported (:func:`_import_tensorflow_alone`)."""
    from keras_sep import _cli_xla, runtime

    if "tensorflow" not in sys.modules:
        _cli_xla.start()  # TensorFlow reads its XLA flags once
        runtime.use_bfc_allocator()
    # Importing Keras imports TensorFlow (and TensorFlow 2.21 Keras), so
    # the quiet start-up wraps the one import.
    with contextlib.nullcontext() if verbose else runtime.quiet_tensorflow():
        _import_keras_lean() if keras else _import_tensorflow_alone()
