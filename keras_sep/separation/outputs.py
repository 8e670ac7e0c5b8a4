"""Where stems go: whole arrays in memory, or one file per stem on disk.

:func:`output_paths` names the files; :class:`StemWriters` writes all of a
song's stems as one unit: every file appears complete, or none does.
"""
import contextlib
import mmap
import os

import numpy as np

from keras_sep import audio

_MAPPED_OUTPUT_BYTES = 1 << 24  # outputs from this size on are memory maps (see output_array)


def output_paths(path, output_dir, instruments, codec="wav", filename_format="{track}/{instrument}.{codec}"):
    """The file of each instrument's stem of ``path``: ``{instrument: path}``.

    ``filename_format`` is relative to ``output_dir`` and may use
    ``{track}`` (the input's name without extension), ``{foldername}``
    (the name of the folder the input is in, to keep ``a/01.mp3`` and
    ``b/01.mp3`` apart), ``{instrument}`` and ``{codec}``.

    Raises:
        ValueError: a field other than these, a malformed format, or one
            that gives several instruments the same file.

    Example:

    >>> output_paths("songs/01.mp3", "stems", ("vocals", "drums"))
    {'vocals': 'stems/01/vocals.wav', 'drums': 'stems/01/drums.wav'}
    >>> output_paths("album/01.mp3", "stems", ("vocals",), codec="flac",
    ...              filename_format="{foldername}-{track}-{instrument}.{codec}")
    {'vocals': 'stems/album-01-vocals.flac'}
    >>> output_paths("songs/01.mp3", "stems", ("vocals", "drums"), filename_format="{track}.wav")
    Traceback (most recent call last):
    ...
    ValueError: filename format '{track}.wav' gives the same file for several instruments
    """
    path = os.fspath(path)
    fields = {
        "track": os.path.splitext(os.path.basename(path))[0],
        "foldername": os.path.basename(os.path.dirname(os.path.abspath(path))),
        "codec": codec,
    }
    try:
        names = {n: filename_format.format(instrument=n, **fields) for n in instruments}
    except KeyError as error:
        raise ValueError(
            f"filename format {filename_format!r}: unknown field {{{error.args[0]}}}; "
            "use {track}, {foldername}, {instrument} and {codec}"
        ) from None
    except (ValueError, IndexError) as error:
        raise ValueError(f"filename format {filename_format!r}: {error}") from None
    targets = {n: os.path.join(output_dir, name) for n, name in names.items()}
    if len(set(targets.values())) != len(targets):
        raise ValueError(f"filename format {filename_format!r} gives the same file for several instruments")
    return targets


def unwritten_paths(path, output_dir, instruments, codec, filename_format, overwrite):
    """:func:`output_paths`, refusing (FileExistsError) a stem file that
    exists already unless ``overwrite``: what ``separate_to_file`` checks
    before it separates anything."""
    targets = output_paths(path, output_dir, instruments, codec, filename_format)
    existing = [t for t in targets.values() if os.path.exists(t)]
    if existing and not overwrite:
        raise FileExistsError(f"{os.fspath(path)}: output {existing[0]} exists (use overwrite=True / --overwrite)")
    return targets


class StemWriters:
    """One :class:`keras_sep.audio.AtomicWriter` per stem, as one context
    manager: the stems are renamed into place when the block ends without
    an error and every file could be finished; otherwise no file and no
    folder the writers made is left.

    Args:
        targets: ``{instrument: path}``.
        sample_rate, channels: those of the stems.
        codec, bitrate: as for ``AtomicWriter``.

    Example:

    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> folder = tempfile.TemporaryDirectory()
    >>> targets = output_paths("mix.wav", folder.name, ("vocals", "drums"))
    >>> block = np.zeros((1000, 2), "float32")
    >>> with StemWriters(targets, 44100, 2) as writers:
    ...     writers.write({"vocals": block, "drums": block})
    >>> sorted(os.listdir(os.path.join(folder.name, "mix")))
    ['drums.wav', 'vocals.wav']

    When the block fails, no stem and no folder it made is left:

    >>> targets = output_paths("other.wav", folder.name, ("vocals", "drums"))
    >>> with StemWriters(targets, 44100, 2) as writers:
    ...     writers.write({"vocals": block})
    ...     raise RuntimeError("the separation failed")
    Traceback (most recent call last):
    ...
    RuntimeError: the separation failed
    >>> os.path.exists(os.path.join(folder.name, "other"))
    False
    >>> folder.cleanup()
    """

    def __init__(self, targets, sample_rate, channels, codec=None, bitrate=None):
        # All made (codec and bitrate checked) before any file or folder exists.
        self.writers = {
            n: audio.AtomicWriter(t, sample_rate, channels, codec, bitrate=bitrate) for n, t in targets.items()
        }
        self._stack = None

    def __enter__(self):
        finished = []  # stems renamed into place
        made = _missing_folders(w.path for w in self.writers.values())
        with contextlib.ExitStack() as stack:
            # Runs last, and matters only when finishing a file failed (a
            # full disk) after others were renamed into place.
            stack.push(lambda kind, error, trace: _undo(kind is not None, finished, made))
            # Last in, first out on the way back: the writer that made a
            # folder removes it after the others have removed their files.
            for writer in self.writers.values():
                stack.enter_context(_recorded(writer, finished))
            self._stack = stack.pop_all()
        return self

    def write(self, blocks):
        """Append ``{instrument: (samples, channels)}`` to the stems."""
        for name, block in blocks.items():
            self.writers[name].write(block)

    def __exit__(self, kind, error, trace):
        stack, self._stack = self._stack, None
        return stack.__exit__(kind, error, trace)


@contextlib.contextmanager
def _recorded(writer, finished):
    """``writer`` as a context; its path joins ``finished`` once it is in place."""
    with writer:
        yield
    finished.append(writer.path)


def _missing_folders(paths):
    """The folders that writing ``paths`` would make, deepest first."""
    missing = set()
    for path in paths:
        folder = os.path.dirname(os.path.abspath(path))
        while not os.path.isdir(folder) and folder not in missing:
            missing.add(folder)
            folder = os.path.dirname(folder)
    return sorted(missing, key=len, reverse=True)


def _undo(failed, finished, made):
    if not failed:
        return False
    for path in finished:
        with contextlib.suppress(OSError):
            os.remove(path)
    for folder in made:
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only if empty: files that were there before keep it
    return False


def output_array(frames, channels):
    """An uninitialised float32 ``(frames, channels)`` array for a whole
    output. Large ones live in an anonymous memory map, where NumPy's
    allocator would ask for transparent huge pages, whose compaction in a
    process that TensorFlow has fragmented cost up to 2 ms per MB here
    (8 % of a 5-minute separation)."""
    size = frames * channels * 4
    if size < _MAPPED_OUTPUT_BYTES:
        return np.empty((frames, channels), np.float32)
    if hasattr(mmap, "MAP_POPULATE"):
        # All pages at once: about 70 % of the cost of faulting them in one
        # at a time as the blocks arrive (Linux).
        memory = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    else:
        memory = mmap.mmap(-1, size)
    return np.frombuffer(memory, np.float32).reshape(frames, channels)


def grown(array, filled, frames):
    """A new output of ``frames`` rows holding ``array[:filled]``."""
    bigger = output_array(frames, array.shape[1])
    bigger[:filled] = array[:filled]
    return bigger


def collect(stream, instruments, channels, length):
    """``{instrument: (samples, channels)}``: the concatenated blocks that
    ``stream`` yields (dicts ``{instrument: (m, channels)}``), in arrays
    made for ``length`` samples up front, so nothing but the outputs grows
    with the input's length."""
    stems = {n: output_array(length, channels) for n in instruments}
    filled = 0
    for out in stream:
        count = len(next(iter(out.values())))
        capacity = len(stems[instruments[0]])
        if filled + count > capacity:
            # Resampling may round up, and a file only FFmpeg reads can
            # decode to more than its stated length (or state none):
            # grow geometrically, not by every block.
            stems = {n: grown(o, filled, max(filled + count, 2 * capacity)) for n, o in stems.items()}
        for n, block in out.items():
            stems[n][filled : filled + count] = block
        filled += count
    return {n: o[:filled] for n, o in stems.items()}
