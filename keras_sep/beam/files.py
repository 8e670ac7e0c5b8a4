"""Files on any filesystem Beam reads (local, ``gs://``, ``s3://``, ...), seen
from a worker: inputs and models are staged to local temporary files, because
the decoders (libsndfile, FFmpeg) and Keras read local paths only; stems are
written locally and then copied to a remote prefix.

Every copy is streamed in blocks, so no file is ever held in memory whole.
"""
import contextlib
import os
import shutil

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

_COPY_BLOCK = 1 << 20  # bytes per read while copying


def is_local(path):
    """Whether ``path`` is on this machine's filesystem (no ``scheme://``)."""
    return FileSystems.get_scheme(os.fspath(path)) is None


def join(prefix, relative):
    """``relative`` (``/``-separated, as ``output_paths`` makes it) under ``prefix``."""
    return FileSystems.join(prefix, *relative.split(os.sep))


def all_exist(paths):
    """Whether every one of ``paths`` exists (one metadata lookup each)."""
    return all(FileSystems.exists(p) for p in paths)


def stage_in(path, folder):
    """A local copy of the remote file ``path`` in ``folder``, under
    ``folder/PARENT/NAME`` so that the ``{track}`` and ``{foldername}`` of
    output names come out as they would for ``path`` itself."""
    parent = os.path.basename(os.path.dirname(path.rstrip("/"))) or "root"
    local = os.path.join(folder, parent, os.path.basename(path))
    os.makedirs(os.path.dirname(local), exist_ok=True)
    # Bytes as stored: a name ending in .gz must not be unpacked on the way.
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as source, open(local, "wb") as copy:
        shutil.copyfileobj(source, copy, _COPY_BLOCK)
    return local


def publish(local_files, targets):
    """Copy ``{name: local file}`` to ``{name: target}``; on any failure
    remove the targets already copied, so that a track has either all its
    stems under the prefix or none (object stores make each one appear
    whole when it is closed)."""
    done = []
    try:
        for name, target in targets.items():
            with open(local_files[name], "rb") as source, FileSystems.create(
                target, compression_type=CompressionTypes.UNCOMPRESSED
            ) as copy:
                shutil.copyfileobj(source, copy, _COPY_BLOCK)
            done.append(target)
    except BaseException:
        with contextlib.suppress(Exception):
            FileSystems.delete(done)
        raise
