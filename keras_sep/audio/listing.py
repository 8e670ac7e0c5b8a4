"""Which files under a folder are audio: by extension, as the readers decode them."""
import os

import soundfile as sf

# File extensions of the libsndfile formats (keyed by soundfile's format
# names: only those this libsndfile build reads count) ...
_SOUNDFILE_EXTENSIONS = {
    "WAV": ("wav", "wave", "bwf"),
    "RF64": ("rf64",),
    "W64": ("w64",),
    "AIFF": ("aif", "aiff", "aifc"),
    "AU": ("au", "snd"),
    "CAF": ("caf",),
    "FLAC": ("flac",),
    "OGG": ("ogg", "oga"),
    "MP3": ("mp3",),
    "NIST": ("sph",),
    "VOC": ("voc",),
    "SD2": ("sd2",),
}
# ... and of the audio formats FFmpeg decodes through PyAV. Video containers
# (mp4, mkv, mov, webm) are left out: in a music folder they are videos, and
# a video given by name is still read.
FFMPEG_EXTENSIONS = ("m4a", "m4b", "aac", "opus", "wma", "mka", "ac3", "eac3", "mp2", "wv", "ape", "mpc", "amr", "alac")


def audio_extensions():
    """The extensions (lower case, no dot) a folder's audio files are taken by."""
    available = sf.available_formats()
    found = {ext for name, exts in _SOUNDFILE_EXTENSIONS.items() if name in available for ext in exts}
    return frozenset(found | set(FFMPEG_EXTENSIONS))


def audio_files(folder):
    """The audio files under ``folder``, recursively, and the other files.

    Returns:
        ``(audio, others)``: two sorted lists of paths relative to
        ``folder``. Hidden files and folders (a leading dot: ``.DS_Store``,
        macOS's ``._song.wav``) count as others; symbolic links to folders
        are not followed.

    Example:

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> for name in ("a/b.wav", "a/cover.jpg", "c.FLAC", ".hidden.wav"):
    ...     os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
    ...     open(os.path.join(root, name), "w").close()
    >>> audio_files(root)
    (['a/b.wav', 'c.FLAC'], ['.hidden.wav', 'a/cover.jpg'])
    """
    extensions = audio_extensions()
    found, others = [], []
    for top, folders, files in os.walk(folder):
        hidden = [f for f in folders if f.startswith(".")]
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        relative = os.path.relpath(top, folder)
        for name in files + hidden:
            path = name if relative == "." else os.path.join(relative, name)
            ext = os.path.splitext(name)[1][1:].lower()
            (found if ext in extensions and not name.startswith(".") and name not in hidden else others).append(path)
    return sorted(found), sorted(others)
