"""Separate with a saved plan: the traced chunk computation, run without Keras.

:func:`keras_sep.export.export_plan` saves what a
:class:`~keras_sep.Separator` runs per chunk (STFT, the network's
inference plan with the operator forms timed on this machine, masks,
inverse STFT; its XLA parts marked as such) as a SavedModel with the
weights, beside a ``keras_sep.json`` with the chunk layout.
:class:`SavedPlanSeparator` loads it with ``tf.saved_model.load``: no Keras
import, no model to build, nothing to trace again. ``keras-sep separate``
keeps one per model and machine in its cache (:mod:`keras_sep._cli_plans`).
"""
import os

from keras_sep import _cache
from keras_sep.separation.chunked import CONFIG_NAME, ChunkedSeparator, read_export_config
from keras_sep.separation.geometry import ChunkGeometry

FORMAT = "keras_sep.plan"
# Raised whenever what the saved function takes or gives, or the config, changes meaning.
FORMAT_VERSION = 1


def file_digests(folder):
    """``{relative path: sha256}`` of every file under ``folder`` but the config."""
    digests = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if relative != CONFIG_NAME:
                digests[relative] = _cache.sha256_file(path)
    return dict(sorted(digests.items()))


def read_config(folder):
    """The config of the saved plan in ``folder``.

    Raises:
        ValueError: no saved plan there, or one of another format version.
    """
    path = os.path.join(os.fspath(folder), CONFIG_NAME)
    return read_export_config(path, folder, FORMAT, FORMAT_VERSION, "saved plan", "save the plan again")


class SavedPlanSeparator(ChunkedSeparator):
    """Separate songs with a plan saved by :func:`keras_sep.export.export_plan`.

    The saved function runs in TensorFlow as the :class:`~keras_sep.Separator`
    it was saved from runs it (one chunk per call, as ``separate_to_file``),
    so the stems are that separator's; songs are streamed chunk by chunk
    with the same chunks, cross-fades and resampling, in bounded memory.
    Loading it needs neither Keras nor the model's code: it starts in about
    half a second where loading the ``.keras`` model and tracing its plan
    take about two. The plan is tied to the machine it was timed and saved
    on (operator forms, XLA code): make it there.

    Args:
        path: the saved plan's folder.
        chunking: ``"overlap"`` or ``"spleeter"``; default the saved separator's.
        progress: show a progress bar; ``None`` shows one for inputs longer
            than a minute.

    Example:

    >>> from keras_sep import Separator, export
    >>> sep = Separator.from_preset("spleeter:2stems")   # doctest: +SKIP
    >>> export.export_plan(sep, "plans/2stems")          # doctest: +SKIP
    >>> SavedPlanSeparator("plans/2stems").separate_to_file("song.mp3", "separated")  # doctest: +SKIP
    {'vocals': 'separated/song/vocals.wav', 'accompaniment': 'separated/song/accompaniment.wav'}
    """

    def __init__(self, path, chunking=None, progress=None):
        import tensorflow as tf

        self.path = os.fspath(path)
        self._setup(read_config(self.path), chunking, progress)
        self.chunks = ChunkGeometry(self.config)
        self._function = tf.saved_model.load(self.path).separate

    def _separate_chunks(self, segments, weights):
        return {name: value.numpy() for name, value in self._function(segments, weights).items()}
