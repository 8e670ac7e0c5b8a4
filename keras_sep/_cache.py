"""Where keras_sep keeps downloads and generated data (no TensorFlow import)."""
import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid

# Folders being removed are renamed to a hidden name with this prefix first.
TRASH_PREFIX = ".removing-"


def cache_dir():
    """``$KERAS_SEP_CACHE``, else ``$XDG_CACHE_HOME/keras_sep`` or ``~/.cache/keras_sep``."""
    root = os.environ.get("KERAS_SEP_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "keras_sep"
    )
    os.makedirs(root, exist_ok=True)
    return root


def switched_on(*names):
    """False when any of the environment variables ``names`` is ``0``,
    ``false``, ``no`` or ``off`` (any case); unset counts as on."""
    return all(os.environ.get(name, "1").strip().lower() not in ("0", "false", "no", "off") for name in names)


def sha256_file(path):
    """The sha256 of a file's bytes, read in 1 MiB blocks (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path, data):
    """Write ``data`` (bytes) to ``path`` through a temporary file in the same
    folder and a rename: another process reading or writing the same cache
    entry sees the old file or the new one, never half of either."""
    fd, temp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.remove(temp)
        raise


def replace_folder(path, write):
    """Make the folder ``path`` whole or not at all: ``write(partial)`` fills
    a temporary folder beside it (this process's own), which then replaces
    ``path``; a failed ``write`` leaves no partial folder behind."""
    partial = f"{path}.partial.{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        write(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    remove_tree(path)
    try:
        os.replace(partial, path)
    except OSError:  # another process put its own in place since: that one stays
        shutil.rmtree(partial, ignore_errors=True)
        if not os.path.isdir(path):
            raise
    return path


def prune_folders(root, keep, days, remove_if=lambda path, unused: unused, clock=time.time):
    """Remove the folders under ``root`` other than the one named ``keep``
    for which ``remove_if(path, unused)`` holds, ``unused`` saying whether
    the folder's modification time is over ``days`` days old, and what
    interrupted removals left; the names of the removed folders. A folder
    that cannot be read or removed (a shared cache's entry of another
    user's) stays."""
    limit = clock() - days * 86400
    removed = []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if name.startswith(TRASH_PREFIX):
            shutil.rmtree(path, ignore_errors=True)
            continue
        try:
            if name != keep and os.path.isdir(path) and remove_if(path, os.stat(path).st_mtime < limit) \
                    and remove_tree(path):
                removed.append(name)
        except OSError as error:
            logging.getLogger("keras_sep").debug("%s kept: %s", path, error)
    return removed


def remove_tree(path):
    """Remove the folder ``path`` so that other processes find it whole or
    not at all: one atomic rename to a hidden name beside it
    (:data:`TRASH_PREFIX`), then the deletion. False when it was gone already."""
    parent, name = os.path.split(os.path.normpath(path))
    trash = os.path.join(parent, f"{TRASH_PREFIX}{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, trash)
    except FileNotFoundError:  # another process removed it first
        return False
    shutil.rmtree(trash, ignore_errors=True)
    return True
