"""The one place where keras_sep reads, resamples and writes audio.

Audio is always a float32 numpy array ``(samples, channels)``. Decoding goes
through soundfile (libsndfile: wav, flac, ogg, mp3, ...), resampling through
soxr. Every failure is an :class:`AudioError` whose message names the file
and the problem on one line. Files are written to a temporary name beside the
target and renamed into place only once complete, so a failure never leaves
a half-written output behind.
"""
import contextlib
import os
import tempfile

import numpy as np
import soundfile as sf
import soxr

CODECS = {"wav": ("WAV", "FLOAT"), "flac": ("FLAC", "PCM_24")}


class AudioError(ValueError):
    """A file or array that cannot be used as audio; the message names it."""


def _describe(source):
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<array>"


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def info(path):
    """``(sample_rate, channels, frames)`` of an audio file, or AudioError."""
    try:
        meta = sf.info(os.fspath(path))
    except Exception as error:  # libsndfile raises several unrelated types
        raise AudioError(f"{path}: cannot read audio ({_one_line(error)})") from None
    return meta.samplerate, meta.channels, meta.frames


def check_waveform(waveform, name="<array>"):
    """Return ``waveform`` as float32 ``(samples, channels)`` or raise AudioError.

    A 1-D array is one channel. NaN or infinite samples are rejected: a mask
    estimated from them would be NaN everywhere, silently.
    """
    array = np.asarray(waveform)
    if array.dtype.kind not in "fiu":
        raise AudioError(f"{name}: audio must be numeric, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise AudioError(
            f"{name}: audio must be (samples, channels), got shape {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise AudioError(f"{name}: audio is empty (shape {array.shape})")
    if array.dtype.kind in "iu":
        array = array / float(np.iinfo(array.dtype).max)
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.all(np.isfinite(array)):
        raise AudioError(f"{name}: audio contains NaN or infinite samples")
    return array


def resample(waveform, sample_rate, target_rate):
    """Resample ``(samples, channels)`` with soxr (high quality)."""
    if int(sample_rate) == int(target_rate):
        return waveform
    return np.ascontiguousarray(
        soxr.resample(waveform, int(sample_rate), int(target_rate), quality="HQ"),
        dtype=np.float32,
    )


def load(path, sample_rate=None, offset=0.0, duration=None):
    """Read an audio file as float32 ``(samples, channels)``.

    Args:
        path: file to read.
        sample_rate: resample to this rate when given (soxr).
        offset: start, in seconds.
        duration: length to read, in seconds (``None``: to the end).

    Returns:
        ``(waveform, sample_rate)``.
    """
    reader = AudioReader(path, offset=offset, duration=duration)
    blocks = list(reader.blocks(1 << 20))
    if not blocks:
        raise AudioError(f"{path}: no audio samples (empty file or offset past the end)")
    waveform = check_waveform(np.concatenate(blocks), path)
    if sample_rate is not None:
        waveform = resample(waveform, reader.sample_rate, sample_rate)
        return waveform, int(sample_rate)
    return waveform, reader.sample_rate


class AudioReader:
    """Read a file block by block, so long files never sit in memory whole.

    Args:
        path: the file.
        offset: start in seconds.
        duration: seconds to read, ``None`` for all.
    """

    def __init__(self, path, offset=0.0, duration=None):
        self.path = os.fspath(path)
        self.sample_rate, self.channels, total = info(self.path)
        if offset < 0 or (duration is not None and duration < 0):
            raise AudioError(
                f"{self.path}: offset and duration must be >= 0, got {offset}, {duration}"
            )
        self.start = int(round(offset * self.sample_rate))
        stop = total if duration is None else self.start + int(round(duration * self.sample_rate))
        self.frames = max(0, min(total, stop) - self.start)

    def blocks(self, block_size):
        """Yield float32 ``(n, channels)`` blocks; AudioError on decoding failure."""
        remaining = self.frames
        try:
            with sf.SoundFile(self.path) as handle:
                if self.start:
                    handle.seek(self.start)
                while remaining > 0:
                    block = handle.read(min(block_size, remaining), dtype="float32", always_2d=True)
                    if len(block) == 0:
                        break  # header promised more than the stream holds (truncated)
                    remaining -= len(block)
                    yield check_waveform(block, self.path)
        except AudioError:
            raise
        except Exception as error:
            raise AudioError(f"{self.path}: cannot decode audio ({_one_line(error)})") from None


class AtomicWriter:
    """Write an audio file under a temporary name; rename it into place on close.

    Use as a context manager: if the block raises, the temporary file is
    removed and the target is left untouched.

    Args:
        path: final file name; its extension or ``codec`` picks the format.
        sample_rate: rate of the samples written.
        channels: channel count.
        codec: ``"wav"`` (32-bit float) or ``"flac"`` (24-bit). Default: from
            the extension.
    """

    def __init__(self, path, sample_rate, channels, codec=None):
        self.path = os.fspath(path)
        codec = codec or os.path.splitext(self.path)[1].lstrip(".").lower()
        if codec not in CODECS:
            raise AudioError(f"{self.path}: unsupported codec {codec!r}; use one of {sorted(CODECS)}")
        self.format, self.subtype = CODECS[codec]
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self._handle = None
        self._temp = None

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        fd, self._temp = tempfile.mkstemp(
            prefix=".partial-", suffix=os.path.basename(self.path), dir=folder
        )
        os.close(fd)
        self._handle = sf.SoundFile(
            self._temp, "w", samplerate=self.sample_rate, channels=self.channels,
            format=self.format, subtype=self.subtype,
        )
        return self

    def write(self, block):
        block = np.asarray(block, dtype=np.float32)
        if self.subtype.startswith("PCM"):
            block = np.clip(block, -1.0, 1.0)
        self._handle.write(block)

    def __exit__(self, exc_type, exc, tb):
        self._handle.close()
        if exc_type is None:
            # mkstemp makes the file private (0600); a finished output gets
            # the permissions any new file would (0666 less the umask).
            os.chmod(self._temp, 0o666 & ~_umask())
            os.replace(self._temp, self.path)
        else:
            with contextlib.suppress(OSError):
                os.remove(self._temp)
        return False


def _umask():
    """The process's umask, read without changing it where Linux tells it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def save(path, waveform, sample_rate, codec=None):
    """Write ``(samples, channels)`` atomically (see :class:`AtomicWriter`)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 1:
        waveform = waveform[:, None]
    with AtomicWriter(path, sample_rate, waveform.shape[1], codec) as writer:
        writer.write(waveform)
