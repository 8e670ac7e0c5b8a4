"""Reading audio files: what they hold (:func:`info`) and their samples, block by block.

Decoding goes through soundfile (libsndfile: wav, flac, ogg, mp3, ...);
files libsndfile cannot read (AAC/M4A, Opus, WMA, the audio of a video, ...)
are decoded with FFmpeg's libraries through PyAV, as Spleeter decodes
everything with FFmpeg. PyAV is imported only for such files, so it stays an
optional dependency. Every failure is an :class:`AudioError` whose message
names the file and the problem on one line.
"""
import os

import numpy as np
import soundfile as sf

from keras_sep.audio.arrays import check_waveform, resample
from keras_sep.audio.errors import AudioError, one_line


def info(path):
    """``(sample_rate, channels, frames)`` of an audio file, or AudioError.

    For files only FFmpeg reads, ``frames`` is the container's stated
    duration (0 when it states none): decoding may deliver a few more or
    fewer samples (codec delay and padding), as FFmpeg's own command does.
    """
    return _open_meta(os.fspath(path))[:3]


def _open_meta(path):
    """``(sample_rate, channels, frames, backend)``; backend "soundfile" or "av"."""
    try:
        meta = sf.info(path)
        return meta.samplerate, meta.channels, meta.frames, "soundfile"
    except Exception as error:  # libsndfile raises several unrelated types
        first = one_line(error)
    if not os.path.isfile(path):
        if not os.path.exists(path):
            raise AudioError(f"{path}: no such file")
        if os.path.isdir(path):
            raise AudioError(f"{path}: is a directory, not an audio file")
        raise AudioError(f"{path}: cannot read audio ({first})")
    try:
        import av
    except ImportError:
        raise AudioError(
            f"{path}: cannot read audio ({first}); formats libsndfile lacks, such as AAC/M4A, "
            "need PyAV (pip install av)"
        ) from None
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio stream (libsndfile: {first})")
            stream = container.streams.audio[0]
            rate, channels = int(stream.rate or 0), int(stream.channels or 0)
            if stream.duration is not None and stream.time_base is not None:
                seconds = float(stream.duration * stream.time_base)
            else:
                seconds = (container.duration or 0) / 1e6  # microseconds
    except AudioError:
        raise
    except Exception as error:
        # PyAV's errors carry FFmpeg's own message without its errno and path.
        second = one_line(getattr(error, "strerror", None) or error)
        raise AudioError(f"{path}: cannot read audio (libsndfile: {first}; FFmpeg: {second})") from None
    if rate <= 0 or channels <= 0:
        raise AudioError(f"{path}: audio stream without a sample rate or channels")
    return rate, channels, max(0, int(round(seconds * rate))), "av"


def _frame_samples(frame):
    """A decoded PyAV audio frame as float32 ``(samples, channels)``."""
    data = frame.to_ndarray()
    if frame.format.is_planar:
        data = data.T
    else:  # packed: (1, samples · channels)
        data = data.reshape(-1, len(frame.layout.channels))
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype.kind == "i":
        return data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    return data.astype(np.float32, copy=False)


def _av_blocks(path, start, limit, block_size):
    """Decode the first audio stream with PyAV from sample ``start`` for at
    most ``limit`` samples (None: to the end), in blocks of ``block_size``.
    Samples before ``start`` are decoded and dropped, so the position is
    exact whatever the container's seeking precision."""
    import av

    position, parts, held = 0, [], 0
    with av.open(path) as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            samples = _frame_samples(frame)
            end = position + len(samples)
            if end > start:
                samples = samples[max(0, start - position) :]
                if limit is not None:
                    samples = samples[: max(0, limit)]
                    limit -= len(samples)
                parts.append(samples)
                held += len(samples)
                while held >= block_size:
                    joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
                    yield joined[:block_size]
                    parts, held = [joined[block_size:]], held - block_size
            position = end
            if limit is not None and limit <= 0:
                break
    if held:
        yield np.concatenate(parts) if len(parts) > 1 else parts[0]


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
        self.sample_rate, self.channels, total, self._backend = _open_meta(self.path)
        if offset < 0 or (duration is not None and duration < 0):
            raise AudioError(
                f"{self.path}: offset and duration must be >= 0, got {offset}, {duration}"
            )
        self.start = int(round(offset * self.sample_rate))
        if self._backend == "soundfile" and 0 < total <= self.start:  # exact length: FFmpeg's is only stated
            raise AudioError(
                f"{self.path}: offset {offset:g} s is past the end of the audio ({total / self.sample_rate:.2f} s)"
            )
        self._limit = None if duration is None else int(round(duration * self.sample_rate))
        stop = total if duration is None else self.start + self._limit
        # Exact for libsndfile's formats; the stated duration for FFmpeg's.
        self.frames = max(0, min(total, stop) - self.start)

    def blocks(self, block_size):
        """Yield float32 ``(n, channels)`` blocks; AudioError on decoding failure."""
        try:
            if self._backend == "av":
                for block in _av_blocks(self.path, self.start, self._limit, block_size):
                    yield check_waveform(block, self.path)
                return
            remaining = self.frames
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
            raise AudioError(f"{self.path}: cannot decode audio ({one_line(error)})") from None
