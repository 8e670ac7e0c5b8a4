"""TensorFlow's persistent XLA cache for the ``keras-sep`` command.

A fresh TensorFlow process compiles the inference plan's XLA parts at its
first chunk (about 1 s of CPU for Spleeter's U-Nets). TensorFlow can keep
the compiled code on disk (``TF_XLA_FLAGS=--tf_xla_persistent_cache_directory``)
and load it in later processes, but it trusts what it finds: an entry that
is truncated or not a protobuf fails the separation with an error, one whose
machine code was altered is loaded as it is (TensorFlow compares only the
graph), and one compiled for another processor is loaded with only a logged
error (its instructions may then fault). So the command
keeps the entries under ``$KERAS_SEP_CACHE/xla/KEY/``, where KEY is a sha256
of what compiled code depends on besides the graph itself (TensorFlow's
version, the processor and its feature flags, the cores, the XLA and oneDNN
settings), each beside a ``.sha256`` file written when it was stored:

* before TensorFlow starts, every entry is hashed; one that does not match
  its record (or has none) is removed, so TensorFlow compiles it again;
* TensorFlow reads and writes a folder of this process's own, holding hard
  links to the checked entries, so it never reads a file another process is
  writing;
* when the command ends, the entries TensorFlow wrote are recorded and
  moved into the shared folder (record first, then the entry, each replaced
  atomically).

TensorFlow 2.21 also logs errors for every entry it loads: one because it
tries to read the binary file as text first, and on an AVX-512 machine two
naming XLA's own ``+prefer-no-gather`` and ``+prefer-no-scatter`` tuning
settings as missing processor features (XLA later stopped reporting
these). While the cache is in use, stderr passes through a small filter
process that drops exactly these lines and nothing else; a process of its own, so that
whatever a crashing TensorFlow prints last still gets through.

Each use touches the key's folder, so its modification time says when it
was last used; when a process makes a new key's folder (TensorFlow, the
processor or an XLA setting changed), the folders of other keys unused for
:data:`~keras_sep._cli_xla_store.UNUSED_DAYS` days are removed (``keras-sep cache``
lists and clears them at any time). The key, its folders and the entries'
checks are :mod:`keras_sep._cli_xla_store`'s; this module is what the command
runs: the switch, the filter and the cache of one command.

``KERAS_SEP_TUNE=0`` (as for the operator timings and probe records) or
``KERAS_SEP_XLA_CACHE=0`` turn the cache off. A persistent cache directory
set in ``TF_XLA_FLAGS`` by the user is used as it is, unchecked.
"""
import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile

from keras_sep._cache import switched_on
from keras_sep._cli_xla_store import _DIRECTORY_FLAG, _FLAGS, _remove_abandoned, checked_entries, folder, publish

logger = logging.getLogger("keras_sep.cli")


# The filter process: stdin to stdout, less the loader's false alarms
# (TensorFlow writes each log line at once, so one arrives whole). Text that
# could still become one (from an "E" that may start a log line on) waits
# for the line's end; anything else, e.g. a progress bar's "\r" line, passes
# at once. Ctrl-C is the command's to handle: the filter passes on what
# the command prints until it ends.
_FILTER = r"""
import os, re, signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
drop = re.compile(
    rb"E\d{4} [\d:. ]+\d+ (?:[\w./-]*/)?(?:cpu_aot_loader\.cc:\d+\] Loading XLA:CPU AOT result\. "
    rb"Target machine feature \+(?:prefer|fast)-[\w-]+ is not +supported on the host machine"
    rb"|text_format\.cc:\d+\] Error parsing text-format tensorflow\.XlaSerializedCacheEntry: )[^\n]*\n")
start = re.compile(rb"E(?:\d{4} |\d{0,4}$)")
held = b""
while True:
    data = os.read(0, 65536)
    if not data:
        break
    held += data
    *lines, held = re.split(rb"(?<=[\n\r])", held)
    out = drop.sub(b"", b"".join(lines))
    found = start.search(held)
    cut = found.start() if found else len(held)
    out, held = out + held[:cut], held[cut:]
    if out:
        os.write(1, out)
os.write(1, held)
"""


def enabled():
    """False when ``KERAS_SEP_TUNE`` or ``KERAS_SEP_XLA_CACHE`` is ``0``, ``false``, ``no`` or ``off``."""
    return switched_on("KERAS_SEP_TUNE", "KERAS_SEP_XLA_CACHE")


def user_directory(flags):
    """The persistent cache directory that ``flags`` (a TF_XLA_FLAGS value) sets, or None."""
    found = re.findall(rf"{_DIRECTORY_FLAG}=(\S*)", flags or "")
    return found[-1].strip("'\"") if found else None


class _Cache:
    """The cache of one command: :meth:`start` before TensorFlow is imported,
    :meth:`close` when the command ends."""

    def __init__(self):
        self.started = False
        self.run = self.shared = self.known = self.saved_flags = self.filter = self.saved_stderr = None

    def start(self):
        if self.started or "tensorflow" in sys.modules:  # in a program that runs TensorFlow already: not ours
            return
        self.started = True
        flags = os.environ.get(_FLAGS)
        if user_directory(flags) is not None:
            logger.debug("XLA cache: %s set by TF_XLA_FLAGS, used as it is", user_directory(flags))
        elif not enabled():
            logger.debug("XLA cache: off (KERAS_SEP_TUNE or KERAS_SEP_XLA_CACHE)")
            return
        else:
            try:
                self.shared = folder()
                _remove_abandoned(self.shared)
                self.run = tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=self.shared)
                self.known = checked_entries(self.shared, self.run)
            except OSError as error:  # an unwritable cache: compile as without it
                logger.warning("XLA cache not used: %s", error)
                self.run = None
                return
            self.saved_flags = flags
            os.environ[_FLAGS] = f"{flags or ''} {_DIRECTORY_FLAG}={self.run}".strip()
            logger.debug("XLA cache: %s (%d entries checked)", self.shared, len(self.known))
        self._filter_stderr()

    def _filter_stderr(self):
        sys.stderr.flush()
        self.saved_stderr = os.dup(2)
        try:
            self.filter = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER], stdin=subprocess.PIPE,
                                           stdout=self.saved_stderr, stderr=self.saved_stderr)
        except OSError as error:
            os.close(self.saved_stderr)
            self.saved_stderr = None
            logger.debug("stderr not filtered: %s", error)
            return
        os.dup2(self.filter.stdin.fileno(), 2)

    def close(self):
        if self.filter is not None:
            sys.stderr.flush()
            os.dup2(self.saved_stderr, 2)
            os.close(self.saved_stderr)
            self.filter.stdin.close()
            try:
                self.filter.wait(timeout=5)
            except subprocess.TimeoutExpired:  # a child of the command holds the pipe still
                pass
            self.filter = None
        if self.run is None:
            return
        try:
            moved = publish(self.run, self.shared, self.known)
            logger.debug("XLA cache: %d new entries stored in %s", moved, self.shared)
        except OSError as error:
            logger.warning("XLA cache: new entries not stored: %s", error)
        shutil.rmtree(self.run, ignore_errors=True)
        self.run = None
        if self.saved_flags is None:
            os.environ.pop(_FLAGS, None)
        else:
            os.environ[_FLAGS] = self.saved_flags


_command = None  # the running command's cache (main() sets it)


@contextlib.contextmanager
def command(use=True):
    """The cache for one command of ``main()`` (none unless ``use``); :func:`start` uses it."""
    global _command
    saved, _command = _command, _Cache() if use else None
    try:
        yield _command
    finally:
        cache, _command = _command, saved
        if cache is not None:
            cache.close()


def start():
    """Point TensorFlow at the checked cache: called just before TensorFlow
    is imported (a no-op outside :func:`command`, or once TensorFlow is loaded)."""
    if _command is not None:
        _command.start()
