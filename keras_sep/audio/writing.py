"""Writing files so that no one ever sees half of one: audio, and any other output.

An output is written under a temporary name beside its target and renamed
into place only once complete (:func:`publishing`), so a failure or an
interruption never leaves a half-written file where a finished one is
expected, and a reader never opens one that is still growing.
:class:`AtomicWriter` encodes audio that way with libsndfile or, for AAC,
with FFmpeg's encoder through PyAV (imported only then).
"""
import contextlib
import os
import tempfile

import numpy as np
import soundfile as sf

from keras_sep.audio.codecs import AAC_BITS_PER_CHANNEL, CODECS, bitrate_options, parse_bitrate
from keras_sep.audio.errors import AudioError, one_line


@contextlib.contextmanager
def publishing(path):
    """Yield a temporary file name beside ``path``; rename it to ``path`` when the block ends.

    The temporary file exists (empty, private) when the block starts; the
    block writes it, by name. When the block ends normally the file gets
    the permissions any new file would (0666 less the umask) and is renamed
    over ``path`` in one step. When the block raises, or publishing fails,
    the temporary file is removed, and so are the folders this call made
    for ``path`` as far as they are empty (another output in them keeps
    them), and the exception goes on.

    Args:
        path: the final file name; missing folders above it are made.

    Raises:
        OSError: when the folder or the temporary file cannot be made.

    Example:

    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "new", "notes.txt")
    >>> with publishing(target) as temporary:
    ...     with open(temporary, "w") as handle:
    ...         _ = handle.write("done")
    >>> open(target).read()
    'done'
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    # The folders made here, deepest first: a failed write removes them
    # again (no litter of empty track folders for inputs that could not
    # be separated).
    made = []
    missing = folder
    while not os.path.isdir(missing):
        made.append(missing)
        missing = os.path.dirname(missing)
    try:
        os.makedirs(folder, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".partial-", suffix=os.path.basename(path), dir=folder)
    except OSError:
        _remove_empty(made)
        raise
    os.close(fd)
    try:
        yield temporary
        # mkstemp makes the file private (0600); a finished output gets the
        # permissions any new file would.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        _remove_empty(made)
        raise


def _remove_empty(folders):
    for folder in folders:
        try:
            os.rmdir(folder)  # only if empty: another writer's file keeps it
        except OSError:
            break


def _umask():
    """The process's umask, read without changing it where Linux tells it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere the only way to read it is to set it: briefly, and back.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class AtomicWriter:
    """Write an audio file under a temporary name; rename it into place on close.

    Use as a context manager: if the block raises, the temporary file is
    removed and the target is left untouched (see :func:`publishing`).

    Args:
        path: final file name; its extension or ``codec`` picks the format.
        sample_rate: rate of the samples written.
        channels: channel count.
        codec: one of :data:`~keras_sep.audio.CODECS`: ``"wav"`` (32-bit
            float), ``"flac"`` (24-bit), ``"mp3"``, ``"ogg"`` (Vorbis) or
            ``"m4a"`` (AAC, 96 kb/s per channel). Default: from the extension.
        bitrate: for the lossy codecs, bits per second over all channels
            (``192000`` or ``"192k"``): MP3 constant at that rate (LAME's
            nearest), Vorbis at the quality whose nominal rate it is
            (variable), AAC as its target. Default: each encoder's own.

    Example:

    >>> import os, tempfile, numpy as np
    >>> target = os.path.join(tempfile.mkdtemp(), "tone.flac")
    >>> with AtomicWriter(target, 44100, 2) as writer:
    ...     writer.write(np.zeros((441, 2), np.float32))
    >>> os.path.exists(target)
    True
    """

    def __init__(self, path, sample_rate, channels, codec=None, bitrate=None):
        self.path = os.fspath(path)
        codec = codec or os.path.splitext(self.path)[1].lstrip(".").lower()
        if codec not in CODECS:
            raise AudioError(f"{self.path}: unsupported codec {codec!r}; use one of {sorted(CODECS)}")
        self.codec = codec
        self.library, self.format, self.subtype, rates = CODECS[codec]
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        if rates is not None and self.sample_rate not in rates:
            raise AudioError(
                f"{self.path}: {codec} cannot hold {self.sample_rate} Hz audio "
                f"(it takes {', '.join(map(str, rates))} Hz); use wav or flac"
            )
        self._options = {}
        if bitrate is not None:
            try:
                bits = parse_bitrate(bitrate)
            except ValueError as error:
                raise AudioError(f"{self.path}: {error}") from None
            self._options = bitrate_options(self.path, codec, bits, self.sample_rate, self.channels)
        self._handle = None
        self._publishing = None

    def __enter__(self):
        self._publishing = publishing(self.path)
        try:
            temporary = self._publishing.__enter__()
        except OSError as error:  # a file where a folder should be, no permission, disk full
            where = f": {error.filename}" if error.filename else ""
            raise AudioError(f"{self.path}: cannot create it ({error.strerror or one_line(error)}{where})") from None
        try:
            if self.library == "av":
                self._handle = _AvEncoder(
                    temporary, self.format, self.subtype, self.sample_rate, self.channels, **self._options
                )
            else:
                self._handle = sf.SoundFile(
                    temporary, "w", samplerate=self.sample_rate, channels=self.channels,
                    format=self.format, subtype=self.subtype, **self._options,
                )
        except Exception as error:
            failure = AudioError(f"{self.path}: cannot write {self.codec} ({one_line(error)})")
            self._publishing.__exit__(AudioError, failure, None)  # removes the file and the folders made
            raise failure from None
        return self

    def write(self, block):
        """Append float32 ``(samples, channels)`` samples; AudioError if the encoder fails."""
        block = np.asarray(block, dtype=np.float32)
        if self.subtype != "FLOAT":  # integer and lossy encodings hold [-1, 1]
            block = np.clip(block, -1.0, 1.0)
        try:
            self._handle.write(block)
        except Exception as error:
            raise AudioError(f"{self.path}: cannot write {self.codec} ({one_line(error)})") from None

    def __exit__(self, exc_type, exc, tb):
        try:
            if isinstance(self._handle, _AvEncoder):
                self._handle.close(flush=exc_type is None)
            else:
                self._handle.close()
        except Exception as error:
            if exc_type is None:  # finishing the file failed: nothing is renamed
                failure = AudioError(f"{self.path}: cannot write {self.codec} ({one_line(error)})")
                self._publishing.__exit__(AudioError, failure, None)
                raise failure from None
        return self._publishing.__exit__(exc_type, exc, tb)


class _AvEncoder:
    """Encode float32 ``(samples, channels)`` blocks into a file with PyAV."""

    def __init__(self, path, container, codec, sample_rate, channels, bit_rate=None):
        import av

        self._av = av
        self._file = av.open(path, "w", format=container)
        self.layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
        self._stream = self._file.add_stream(codec, rate=sample_rate, layout=self.layout)
        self._stream.bit_rate = bit_rate or AAC_BITS_PER_CHANNEL * channels
        self.rate = sample_rate
        self.written = 0

    def write(self, block):
        if not len(block):
            return
        frame = self._av.AudioFrame.from_ndarray(np.ascontiguousarray(block.T), format="fltp", layout=self.layout)
        frame.rate, frame.pts = self.rate, self.written
        self.written += len(block)
        for packet in self._stream.encode(frame):
            self._file.mux(packet)

    def close(self, flush=True):
        try:
            if flush:
                for packet in self._stream.encode(None):
                    self._file.mux(packet)
        finally:
            self._file.close()


def save(path, waveform, sample_rate, codec=None, bitrate=None):
    """Write ``(samples, channels)`` atomically (see :class:`AtomicWriter`)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 1:
        waveform = waveform[:, None]
    with AtomicWriter(path, sample_rate, waveform.shape[1], codec, bitrate=bitrate) as writer:
        writer.write(waveform)
