"""The one place where keras_sep reads, resamples and writes audio.

Audio is always a float32 numpy array ``(samples, channels)``. The package
is split by concern; everything a caller needs is importable from here:

- :mod:`~keras_sep.audio.errors`: :class:`AudioError` and :func:`one_line`,
  the one-line error vocabulary every keras_sep module uses.
- :mod:`~keras_sep.audio.reading`: :func:`info`, :func:`load` and
  :class:`AudioReader` (libsndfile, and FFmpeg through PyAV for what
  libsndfile cannot read).
- :mod:`~keras_sep.audio.arrays`: :func:`check_waveform` and
  :func:`resample` (soxr).
- :mod:`~keras_sep.audio.codecs`: :data:`CODECS`, :data:`LOSSY_CODECS` and
  :func:`parse_bitrate`.
- :mod:`~keras_sep.audio.listing`: :func:`audio_files`, the audio files
  under a folder.
- :mod:`~keras_sep.audio.writing`: :class:`AtomicWriter`, :func:`save` and
  :func:`publishing`, which writes any output under a temporary name and
  renames it into place only once complete.

Importing it loads numpy, soundfile and soxr, never TensorFlow or PyAV.
"""
from keras_sep.audio.arrays import check_waveform, resample
from keras_sep.audio.codecs import CODECS, LOSSY_CODECS, parse_bitrate
from keras_sep.audio.errors import AudioError, one_line
from keras_sep.audio.reading import AudioReader, info, load
from keras_sep.audio.writing import AtomicWriter, publishing, save
from keras_sep.audio.listing import audio_files

__all__ = [
    "CODECS",
    "LOSSY_CODECS",
    "AtomicWriter",
    "AudioError",
    "AudioReader",
    "check_waveform",
    "info",
    "load",
    "one_line",
    "parse_bitrate",
    "publishing",
    "resample",
    "save",
    "audio_files",
]
