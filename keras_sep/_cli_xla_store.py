"""The folders of the ``keras-sep`` command's XLA cache, and their checks.

The compiled code is kept under ``$KERAS_SEP_CACHE/xla/KEY/``, where KEY is a
sha256 of what it depends on besides the graph (:func:`machine_key`). Each
entry lies beside a ``.sha256`` record: :func:`checked_entries` hands a
process's run folder only the entries that match theirs, :func:`publish`
records and moves in what TensorFlow wrote. :func:`folder` touches the key's
folder as it is used; making a new one removes the folders of other keys
unused for :data:`UNUSED_DAYS` days (:func:`prune_unused`), except those a
running process still works in (:func:`in_use`). Standard library only:
read before TensorFlow is imported, and by ``keras-sep cache``.
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

from keras_sep._cache import cache_dir, prune_folders, sha256_file, write_atomically

logger = logging.getLogger("keras_sep.cli")

_FLAGS = "TF_XLA_FLAGS"
_DIRECTORY_FLAG = "--tf_xla_persistent_cache_directory"
# Other machine keys' compiled code is removed after this long unused
# (about 0.5 MB per key for Spleeter's U-Nets).
UNUSED_DAYS = 30


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
    removed = prune_folders(root, keep, days, lambda path, unused: unused and not in_use(path))
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
