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
:data:`UNUSED_DAYS` days are removed (``keras-sep cache`` lists and clears
them at any time).

``KERAS_SEP_TUNE=0`` (as for the operator timings and probe records) or
``KERAS_SEP_XLA_CACHE=0`` turn the cache off. A persistent cache directory
set in ``TF_XLA_FLAGS`` by the user is used as it is, unchecked.
"""
import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

from keras_sep._cache import TRASH_PREFIX, cache_dir, remove_tree, sha256_file, write_atomically

logger = logging.getLogger("keras_sep.cli")

_FLAGS = "TF_XLA_FLAGS"
_DIRECTORY_FLAG = "--tf_xla_persistent_cache_directory"
_OFF = ("0", "false", "no", "off")
# Other machine keys' compiled code is removed after this long unused
# (about 0.5 MB per key for Spleeter's U-Nets).
UNUSED_DAYS = 30

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
    return all(os.environ.get(name, "1").strip().lower() not in _OFF
               for name in ("KERAS_SEP_TUNE", "KERAS_SEP_XLA_CACHE"))


def user_directory(flags):
    """The persistent cache directory that ``flags`` (a TF_XLA_FLAGS value) sets, or None."""
    found = re.findall(rf"{_DIRECTORY_FLAG}=(\S*)", flags or "")
    return found[-1].strip("'\"") if found else None


def _cpu():
    """The processor's model name and a digest of its feature flags (Linux), else what platform says."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                name, _, value = line.partition(":")
                fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    features = fields.get("flags") or fields.get("Features") or ""
    return fields.get("model name") or platform.processor() or platform.machine(), hashlib.sha256(
        " ".join(sorted(features.split())).encode()).hexdigest()[:16]


def machine_key():
    """What XLA's compiled code depends on besides the graph, read without
    importing TensorFlow (which must not be loaded before the cache is set)."""
    try:
        version = importlib.metadata.version("tensorflow")
    except importlib.metadata.PackageNotFoundError:
        version = None
    cpu, features = _cpu()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "tensorflow": version, "machine": platform.machine(), "cpu": cpu, "cpu_features": features, "cores": cores,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "xla_flags": os.environ.get("XLA_FLAGS", ""), "tf_xla_flags": _without_directory(os.environ.get(_FLAGS, "")),
    }


def _without_directory(flags):
    """``flags`` without the cache directory flag: where the code is kept does
    not change it (and a running command points that flag at its own folder)."""
    return " ".join(re.sub(rf"{_DIRECTORY_FLAG}=\S*", "", flags).split())


def key_name(key=None):
    """The folder name of machine key ``key`` (default: this machine's), a sha256 of its fields."""
    text = json.dumps(machine_key() if key is None else key, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def folder():
    """This machine's entries: ``$KERAS_SEP_CACHE/xla/KEY`` (and KEY's fields in
    ``key.json`` there), touched as used; making it prunes other keys' folders."""
    key = machine_key()
    root = os.path.join(cache_dir(), "xla")
    path = os.path.join(root, key_name(key))
    os.makedirs(root, exist_ok=True)
    try:
        os.mkdir(path)
    except FileExistsError:
        with contextlib.suppress(OSError):  # a shared cache folder of another user's: used as it is
            os.utime(path)
    else:
        prune_unused(root, keep=os.path.basename(path))
    if not os.path.exists(os.path.join(path, "key.json")):
        write_atomically(os.path.join(path, "key.json"), json.dumps(key, sort_keys=True).encode())
    return path


def in_use(shared):
    """Whether a running process works in key folder ``shared`` (has a run folder there)."""
    return any(alive for _, alive in _runs(shared))


def prune_unused(root, keep, days=UNUSED_DAYS):
    """Remove the key folders under ``root`` other than ``keep`` that no process
    has used for ``days`` days (by their modification time), and what an
    interrupted removal left; the names of the removed key folders."""
    limit = time.time() - days * 86400
    removed = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(TRASH_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            unused = name != keep and os.path.isdir(path) and os.stat(path).st_mtime < limit
            if unused and not in_use(path) and remove_tree(path):
                removed.append(name)
        except OSError as error:  # another user's folder: theirs to remove
            logger.debug("XLA cache: %s kept: %s", path, error)
    if removed:
        logger.info("removed the XLA code of %d other machine key%s unused for %d days from %s",
                    len(removed), "" if len(removed) == 1 else "s", days, root)
    return removed


def _recorded(path):
    try:
        with open(path + ".sha256", encoding="ascii") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def _runs(shared):
    """``(name, process alive)`` of each process's run folder in ``shared``
    (off POSIX, where os.kill(pid, 0) would end the process, each counts as alive)."""
    for name in os.listdir(shared):
        match = re.fullmatch(r"run-(\d+)-\w+", name)
        if match is None:
            continue
        if os.name != "posix":
            yield name, True
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            yield name, False
        except (OSError, OverflowError):  # alive but not ours, or no such pid: keep
            yield name, True
        else:
            yield name, True


def _remove_abandoned(shared):
    """Remove the run folders of processes that ended without cleaning up (killed)."""
    for name, alive in list(_runs(shared)):
        if not alive:
            shutil.rmtree(os.path.join(shared, name), ignore_errors=True)


def checked_entries(shared, run):
    """Link the entries of ``shared`` that match their records into ``run``;
    remove the others (TensorFlow then compiles them again). Their names."""
    linked, removed = set(), []
    for name in sorted(os.listdir(shared)):
        if not name.endswith(".pb"):
            continue
        path = os.path.join(shared, name)
        recorded = _recorded(path)
        try:
            valid = recorded is not None and sha256_file(path) == recorded
        except OSError:
            valid = False
        if not valid:
            removed.append(name)
            for stale in (path, path + ".sha256"):
                with contextlib.suppress(OSError):
                    os.remove(stale)
            continue
        try:
            os.link(path, os.path.join(run, name))
        except OSError:  # a file system without hard links
            shutil.copyfile(path, os.path.join(run, name))
        linked.add(name)
    if removed:
        logger.warning("%s: %d stale or corrupt XLA cache entr%s removed; compiled again where needed",
                       shared, len(removed), "y" if len(removed) == 1 else "ies")
        logger.debug("removed: %s", " ".join(removed))
    return linked


def publish(run, shared, known):
    """Record and move into ``shared`` the entries TensorFlow wrote in ``run``
    (those not in ``known``); the number moved."""
    moved = 0
    for name in sorted(os.listdir(run)):
        if not name.endswith(".pb") or name in known:
            continue
        path, target = os.path.join(run, name), os.path.join(shared, name)
        # The record goes first: a reader that finds the entry finds its
        # record (or a newer one, which it then rejects: a compile wasted, no harm).
        write_atomically(target + ".sha256", sha256_file(path).encode())
        os.replace(path, target)
        moved += 1
    return moved


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
