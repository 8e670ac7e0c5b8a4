"""The one place where keras_sep reads, resamples and writes audio.

Audio is always a float32 numpy array ``(samples, channels)``. Decoding goes
through soundfile (libsndfile: wav, flac, ogg, mp3, ...); files libsndfile
cannot read (AAC/M4A, Opus, WMA, the audio of a video, ...) are decoded with
FFmpeg's libraries through PyAV, as Spleeter decodes everything with FFmpeg.
Resampling goes through soxr. Every failure is an :class:`AudioError` whose message names the file
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

# Output codecs: (library, container, encoding, sample rates it can hold or
# None for any). WAV is 32-bit float and FLAC 24-bit (lossless); MP3 and
# Ogg Vorbis come from libsndfile, AAC (.m4a) from FFmpeg through PyAV.
# (Spleeter also writes WMA; FFmpeg's WMA decoder drops the first 2048
# samples of what its encoder wrote, so stems would not line up.)
_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
CODECS = {
    "wav": ("soundfile", "WAV", "FLOAT", None),
    "flac": ("soundfile", "FLAC", "PCM_24", None),
    "mp3": ("soundfile", "MP3", "MPEG_LAYER_III", _MP3_RATES),
    "ogg": ("soundfile", "OGG", "VORBIS", None),
    "m4a": ("av", "mp4", "aac", _AAC_RATES),
}
# AAC's bit rate per channel (libsndfile's MP3 and Vorbis defaults give
# about 80 and 70 per channel).
_AAC_BITS_PER_CHANNEL = 96000
# Bit rates a caller may ask for (bits/s, all channels together), by codec.
# MP3 is constant bit rate, within the range of the MPEG version that the
# sample rate implies (1: 32-48 kHz, 2: 16-24 kHz, 2.5: below), and LAME
# rounds to the nearest rate that version has. Vorbis is variable: a bit
# rate picks the quality whose nominal rate it is (libvorbis' table for
# 44.1 kHz stereo, q0-q10, per channel here); the actual rate follows the
# music. AAC takes the bit rate as its target.
LOSSY_CODECS = ("mp3", "ogg", "m4a")
_MP3_KBPS = ((32000, 32, 320), (16000, 8, 160), (0, 8, 64))
_VORBIS_NOMINAL_PER_CHANNEL = (32000, 40000, 48000, 56000, 64000, 80000, 96000, 112000, 128000, 160000, 250000)
_AAC_PER_CHANNEL_RANGE = (16000, 320000)


class AudioError(ValueError):
    """A file or array that cannot be used as audio; the message names it."""


def _describe(source):
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<array>"


def one_line(error):
    """An exception's message on one line (its type's name when empty)."""
    return " ".join(str(error).split()) or type(error).__name__


def parse_bitrate(value):
    """A bit rate in bits/s from ``128000``, ``"128000"``, ``"128k"`` or
    ``"128K"``; ValueError for anything else."""
    text = str(value).strip()
    scale = 1000 if text[-1:] in ("k", "K") else 1
    number = text[:-1] if scale == 1000 else text
    try:
        bits = float(number) * scale
    except ValueError:
        bits = None
    if bits is None or not np.isfinite(bits) or bits <= 0 or bits != int(bits):
        raise ValueError(f"bad bit rate {value!r}: give bits per second, e.g. 128k or 128000")
    return int(bits)


def _bitrate_options(path, codec, bitrate, sample_rate, channels):
    """Encoder settings for ``bitrate`` (bits/s, all channels): keyword
    arguments for ``soundfile.SoundFile`` or the AAC bit rate; AudioError
    when the codec has no bit rate or cannot take this one."""
    if codec == "mp3":
        floor = next(entry for entry in _MP3_KBPS if sample_rate >= entry[0])
        low, high = floor[1] * 1000, floor[2] * 1000
    elif codec == "ogg":
        low, high = (channels * r for r in (_VORBIS_NOMINAL_PER_CHANNEL[0], _VORBIS_NOMINAL_PER_CHANNEL[-1]))
    elif codec == "m4a":
        low, high = (channels * r for r in _AAC_PER_CHANNEL_RANGE)
    else:
        lossy = ", ".join(LOSSY_CODECS[:-1]) + " and " + LOSSY_CODECS[-1]
        raise AudioError(f"{path}: {codec} is lossless and takes no bit rate (bit rates are for {lossy})")
    if not low <= bitrate <= high:
        raise AudioError(
            f"{path}: {codec} at {sample_rate} Hz, {channels} channel(s) takes {low // 1000}k to "
            f"{high // 1000}k bits/s, not {bitrate / 1000:g}k"
        )
    if codec == "mp3":
        # libsndfile's CBR rate is top - level * (top - bottom) kb/s, truncated:
        # aim half a kb/s above the rate so that truncation lands on it.
        top, bottom = high / 1000, low / 1000
        level = (top - bitrate / 1000 - 0.5) / (top - bottom)
        return {"bitrate_mode": "CONSTANT", "compression_level": float(np.clip(level, 0.0, 1.0))}
    if codec == "ogg":
        quality = np.interp(bitrate / channels, _VORBIS_NOMINAL_PER_CHANNEL, np.linspace(0.0, 1.0, 11))
        return {"compression_level": float(1.0 - quality)}
    return {"bit_rate": int(bitrate)}


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


def check_waveform(waveform, name="<array>"):
    """Return ``waveform`` as float32 ``(samples, channels)`` or raise AudioError.

    A 1-D array is one channel. Integers are PCM: signed ones are divided by
    2^(bits-1), unsigned ones centred on their middle value first (as
    libsndfile reads 8-bit WAV). NaN or infinite samples are rejected: a mask
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
    if array.dtype.kind == "i":  # PCM as libsndfile and FFmpeg scale it: full scale is 2^(bits-1)
        array = array / float(-np.iinfo(array.dtype).min)
    elif array.dtype.kind == "u":  # unsigned PCM (8-bit WAV): silence is the middle value
        half = float(np.iinfo(array.dtype).max // 2 + 1)
        array = (array - half) / half
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


class AtomicWriter:
    """Write an audio file under a temporary name; rename it into place on close.

    Use as a context manager: if the block raises, the temporary file is
    removed and the target is left untouched.

    Args:
        path: final file name; its extension or ``codec`` picks the format.
        sample_rate: rate of the samples written.
        channels: channel count.
        codec: one of :data:`CODECS`: ``"wav"`` (32-bit float), ``"flac"``
            (24-bit), ``"mp3"``, ``"ogg"`` (Vorbis) or ``"m4a"`` (AAC, 96 kb/s
            per channel). Default: from the extension.
        bitrate: for the lossy codecs, bits per second over all channels
            (``192000`` or ``"192k"``): MP3 constant at that rate (LAME's
            nearest), Vorbis at the quality whose nominal rate it is
            (variable), AAC as its target. Default: each encoder's own.
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
            self._options = _bitrate_options(self.path, codec, bits, self.sample_rate, self.channels)
        self._handle = None
        self._temp = None

    def __enter__(self):
        folder = os.path.dirname(os.path.abspath(self.path))
        # The folders this writer makes, deepest first: a failed write
        # removes them again when they are empty (no litter of empty
        # track folders for inputs that could not be separated).
        self._made = []
        missing = folder
        while not os.path.isdir(missing):
            self._made.append(missing)
            missing = os.path.dirname(missing)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, self._temp = tempfile.mkstemp(
                prefix=".partial-", suffix=os.path.basename(self.path), dir=folder
            )
        except OSError as error:  # a file where a folder should be, no permission, disk full
            self._remove_made()
            where = f": {error.filename}" if error.filename else ""
            raise AudioError(f"{self.path}: cannot create it ({error.strerror or one_line(error)}{where})") from None
        os.close(fd)
        try:
            if self.library == "av":
                self._handle = _AvEncoder(
                    self._temp, self.format, self.subtype, self.sample_rate, self.channels, **self._options
                )
            else:
                self._handle = sf.SoundFile(
                    self._temp, "w", samplerate=self.sample_rate, channels=self.channels,
                    format=self.format, subtype=self.subtype, **self._options,
                )
        except Exception as error:
            with contextlib.suppress(OSError):
                os.remove(self._temp)
            self._remove_made()
            raise AudioError(f"{self.path}: cannot write {self.codec} ({one_line(error)})") from None
        return self

    def _remove_made(self):
        for folder in self._made:
            try:
                os.rmdir(folder)  # only if empty: another writer's file keeps it
            except OSError:
                break

    def write(self, block):
        block = np.asarray(block, dtype=np.float32)
        if self.subtype != "FLOAT":  # integer and lossy encodings hold [-1, 1]
            block = np.clip(block, -1.0, 1.0)
        try:
            self._handle.write(block)
        except Exception as error:
            raise AudioError(f"{self.path}: cannot write {self.codec} ({one_line(error)})") from None

    def __exit__(self, exc_type, exc, tb):
        failure = None
        try:
            if isinstance(self._handle, _AvEncoder):
                self._handle.close(flush=exc_type is None)
            else:
                self._handle.close()
        except Exception as error:
            if exc_type is None:  # finishing the file failed: nothing is renamed
                failure = AudioError(f"{self.path}: cannot write {self.codec} ({one_line(error)})")
        if exc_type is None and failure is None:
            # mkstemp makes the file private (0600); a finished output gets
            # the permissions any new file would (0666 less the umask).
            os.chmod(self._temp, 0o666 & ~_umask())
            os.replace(self._temp, self.path)
        else:
            with contextlib.suppress(OSError):
                os.remove(self._temp)
            self._remove_made()
        if failure is not None:
            raise failure from None
        return False


class _AvEncoder:
    """Encode float32 ``(samples, channels)`` blocks into a file with PyAV."""

    def __init__(self, path, container, codec, sample_rate, channels, bit_rate=None):
        import av

        self._av = av
        self._file = av.open(path, "w", format=container)
        self.layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
        self._stream = self._file.add_stream(codec, rate=sample_rate, layout=self.layout)
        self._stream.bit_rate = bit_rate or _AAC_BITS_PER_CHANNEL * channels
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


def save(path, waveform, sample_rate, codec=None, bitrate=None):
    """Write ``(samples, channels)`` atomically (see :class:`AtomicWriter`)."""
    waveform = np.asarray(waveform, dtype=np.float32)
    if waveform.ndim == 1:
        waveform = waveform[:, None]
    with AtomicWriter(path, sample_rate, waveform.shape[1], codec, bitrate=bitrate) as writer:
        writer.write(waveform)
