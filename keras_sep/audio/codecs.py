"""The output codecs :class:`~keras_sep.audio.AtomicWriter` offers, and their bit rates.

A codec is named by its file extension. Each entry of :data:`CODECS` says
which library encodes it, into which container and encoding, and which
sample rates the format can hold (None: any). WAV is 32-bit float and FLAC
24-bit (lossless); MP3 and Ogg Vorbis come from libsndfile, AAC (``.m4a``)
from FFmpeg through PyAV. (Spleeter also writes WMA; FFmpeg's WMA decoder
drops the first 2048 samples of what its encoder wrote, so stems would not
line up.)
"""
import numpy as np

from keras_sep.audio.errors import AudioError

_AAC_RATES = (7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
CODECS = {
    "wav": ("soundfile", "WAV", "FLOAT", None),
    "flac": ("soundfile", "FLAC", "PCM_24", None),
    "mp3": ("soundfile", "MP3", "MPEG_LAYER_III", _MP3_RATES),
    "ogg": ("soundfile", "OGG", "VORBIS", None),
    "m4a": ("av", "mp4", "aac", _AAC_RATES),
}
# AAC's bit rate per channel when none is asked for (libsndfile's MP3 and
# Vorbis defaults give about 80 and 70 per channel).
AAC_BITS_PER_CHANNEL = 96000
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


def bitrate_options(path, codec, bitrate, sample_rate, channels):
    """Encoder settings for ``bitrate`` (bits/s, all channels).

    Returns keyword arguments for ``soundfile.SoundFile`` (MP3, Vorbis) or
    ``{"bit_rate": ...}`` for the AAC encoder; AudioError naming ``path``
    when the codec has no bit rate or cannot take this one.
    """
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
