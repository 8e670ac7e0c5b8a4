"""Process-wide TensorFlow settings, for programs that ask for them.

Importing keras_sep changes nothing in its host process: no environment
variables, no allocator, no log levels. The two settings here change the
whole process, so they are opt-ins. The ``keras-sep`` command calls
:func:`use_bfc_allocator` and (unless ``--verbose``) :func:`quiet_tensorflow`
before it imports TensorFlow; a program of one's own can do the same,
first thing:

>>> from keras_sep import runtime
>>> runtime.use_bfc_allocator()    # doctest: +SKIP
True
>>> with runtime.quiet_tensorflow():  # doctest: +SKIP
...     import tensorflow as tf
"""
import contextlib
import logging
import os
import re
import sys
import tempfile

logger = logging.getLogger(__name__)

_BFC_VARIABLE = "TF_CPU_ALLOCATOR_USE_BFC"
_LOG_LEVEL_VARIABLE = "TF_CPP_MIN_LOG_LEVEL"

# What TensorFlow, CUDA and absl write to file descriptor 2 while TensorFlow
# loads and finds its devices, whatever TF_CPP_MIN_LOG_LEVEL says (absl
# writes every message before its InitializeLog(), and TensorFlow 2.21 loads
# two libraries that each log before it): absl's INFO and WARNING lines,
# absl's note about that, the second line of the CPU feature notice, the
# ERROR line of a machine with CUDA libraries but no usable GPU driver, and
# the ERROR lines of CUDA plugins registered twice (older TensorFlows).
# Anything else (a real error, a Python message) is passed on.
_START_UP_NOISE = re.compile(
    r"^(?:[IW]\d{4} [\d:. ]+ [\w./-]+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: "
    r"|E\d{4} [\d:. ]+ (?:[\w./-]*/)?cuda_\w+\.cc:\d+\] (?:failed call to cuInit|Unable to register))"
)


def _tensorflow_has_devices():
    """Whether TensorFlow has set up its devices in this process, which is
    when it picks its CPU allocator (its first op does it, or listing the
    logical devices; importing it or listing the physical ones does not)."""
    if "tensorflow" not in sys.modules:
        return False
    try:
        from tensorflow.python.eager import context
    except ImportError:  # a TensorFlow laid out otherwise: assume the worst
        return True
    return bool(getattr(context.context(), "_initialized", True))


def use_bfc_allocator():
    """Have TensorFlow keep CPU memory in its BFC allocator.

    TensorFlow's default CPU allocator hands every buffer larger than glibc's
    largest mmap threshold (32 MB) to a fresh ``mmap``, so a separation
    chunk's spectra and inverse-FFT frames are page-faulted in anew on every
    chunk (on a 2-vCPU VM, 100 ms of a 420 ms chunk). The BFC ("best fit
    with coalescing") allocator keeps freed buffers and reuses them.

    This sets the process's ``TF_CPU_ALLOCATOR_USE_BFC=true``, which
    TensorFlow reads once, when it sets up its devices (its first op, or
    ``tf.config.list_logical_devices()``). Call it before that: before
    importing TensorFlow is safest; after ``import tensorflow`` still works
    as long as no op has run. A value the variable already has is kept, so
    ``TF_CPU_ALLOCATOR_USE_BFC=false`` in the environment still wins.

    Returns:
        True if TensorFlow uses (or will use) the BFC allocator; False when
        the variable says otherwise, or when TensorFlow has set up its
        devices already and the call comes too late (logged as a warning).
    """
    value = os.environ.get(_BFC_VARIABLE)
    if value is not None:
        on = value.strip().lower() in ("true", "1")
        logger.debug("%s=%s is set already and kept", _BFC_VARIABLE, value)
        return on
    if _tensorflow_has_devices():
        logger.warning(
            "use_bfc_allocator() has no effect: TensorFlow has set up its devices (run an op) already and "
            "keeps its default CPU allocator; call it before TensorFlow's first op"
        )
        return False
    os.environ[_BFC_VARIABLE] = "true"
    return True


@contextlib.contextmanager
def _stderr_captured():
    """Send file descriptor 2 (where C++ code logs) to a temporary file for
    the block; yields a list that holds the captured text afterwards."""
    captured = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode("utf-8", "replace"))


@contextlib.contextmanager
def quiet_tensorflow():
    """Hide TensorFlow's start-up notices while the block imports it.

    TensorFlow 2.21, CUDA and absl print lines such as ``cudart_stub.cc ...
    Could not find cuda drivers``, ``failed call to cuInit`` and absl's
    ``I0000 ...`` notices from C++ straight to file descriptor 2 while
    TensorFlow loads and finds its devices, even under
    ``TF_CPP_MIN_LOG_LEVEL``, so no Python filter sees them. Inside the
    block, descriptor 2 goes to a temporary file; on leaving it, TensorFlow
    (if the block imported it) lists its physical devices, which is where
    CUDA reports a missing driver, and then descriptor 2 is restored and
    every captured line that is not such a start-up notice is written back
    to stderr, so real errors stay visible (the notices go to this module's
    logger at DEBUG level). It also sets ``TF_CPP_MIN_LOG_LEVEL=2`` unless
    set: TensorFlow's later INFO and WARNING lines are hidden, its errors
    kept.

    Use it at a program's entry point, around the first import of
    TensorFlow (or of a module that imports it): it changes the process's
    environment, and it cannot hide what an earlier import printed. Listing
    the physical devices does not fix the CPU allocator, so
    :func:`use_bfc_allocator` may come before or after.

    Example:

    >>> with runtime.quiet_tensorflow():  # doctest: +SKIP
    ...     import tensorflow as tf
    """
    os.environ.setdefault(_LOG_LEVEL_VARIABLE, "2")
    if "tensorflow" in sys.modules:  # started already: nothing left to hide
        yield
        return
    captured = []
    try:
        with _stderr_captured() as captured:
            yield
            if "tensorflow" in sys.modules:
                sys.modules["tensorflow"].config.list_physical_devices()
    finally:  # also when the import fails: its own messages matter then
        _pass_on("".join(captured))


def _pass_on(text):
    """Write captured lines back to stderr, less the start-up notices (those
    go to this module's logger at DEBUG level)."""
    kept = []
    for line in text.splitlines(keepends=True):
        if _START_UP_NOISE.match(line):
            logger.debug("TensorFlow start-up: %s", line.rstrip())
        else:
            kept.append(line)
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()
