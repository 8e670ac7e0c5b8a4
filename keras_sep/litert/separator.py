"""Separate with a LiteRT export: the network in LiteRT (XNNPACK), the rest in NumPy."""
import logging
import os

from keras_sep.litert.chunks import SpectralChunks
from keras_sep.separation.chunked import CONFIG_NAME, ChunkedSeparator, read_export_config

MODEL_NAME = "separator.tflite"
FORMAT = "keras_sep.litert"
# Raised whenever what the .tflite takes or gives, or the config, changes meaning.
FORMAT_VERSION = 1

logger = logging.getLogger(__name__)


def read_config(path):
    """The resolved config of the export at ``path`` (its folder or its
    ``.tflite`` file), with ``"model"`` set to the ``.tflite``'s path.

    Raises:
        ValueError: no export there, or a config that is not one.
    """
    path = os.fspath(path)
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    config_path = os.path.join(folder, CONFIG_NAME)
    config = read_export_config(config_path, path, FORMAT, FORMAT_VERSION, "LiteRT export", "export the model again")
    model = path if os.path.isfile(path) else os.path.join(folder, config.get("model", MODEL_NAME))
    if not os.path.isfile(model):
        raise ValueError(f"{path}: no {os.path.basename(model)} beside {CONFIG_NAME}")
    return dict(config, model=model)


def default_threads():
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _interpreter(model, threads):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # without the litert extra: TensorFlow's copy of the runtime
        logger.info("ai-edge-litert is not installed (pip install keras_sep[litert]); using tf.lite")
        from tensorflow.lite import Interpreter
    # The Python interpreter applies XNNPACK to float models by default.
    interpreter = Interpreter(model_path=model, num_threads=int(threads))
    interpreter.allocate_tensors()
    return interpreter


class LiteRTSeparator(ChunkedSeparator):
    """Separate songs with a separator exported by
    :func:`keras_sep.export.export_litert` (``keras-sep export --format
    litert``), without TensorFlow.

    The spectrogram network runs in the LiteRT runtime (``ai-edge-litert``,
    with XNNPACK); the STFT, masks and inverse STFT run in NumPy. Songs are
    streamed chunk by chunk with the same chunks, cross-fades and
    resampling as :class:`keras_sep.Separator`, in bounded memory, and
    match its output to float32 rounding (over 100 dB SNR).

    Args:
        path: the export's folder (``separator.tflite`` and
            ``keras_sep.json``) or its ``.tflite`` file.
        chunking: ``"overlap"`` or ``"spleeter"`` (as ``Separator``'s);
            default the one the export was made with.
        threads: CPU threads of the runtime; default every core this
            process may use.
        progress: show a progress bar; ``None`` shows one for inputs longer
            than a minute.

    Example:

    >>> sep = LiteRTSeparator("exports/2stems")       # doctest: +SKIP
    >>> stems = sep.separate("song.mp3")              # doctest: +SKIP
    >>> sep.separate_to_file("song.mp3", "separated")  # doctest: +SKIP
    {'vocals': 'separated/song/vocals.wav', 'accompaniment': 'separated/song/accompaniment.wav'}
    """

    def __init__(self, path, chunking=None, threads=None, progress=None):
        self._setup(read_config(path), chunking, progress)
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads!r}")
        self._interpreter = _interpreter(self.config["model"], self.threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self.chunks = SpectralChunks(self.config, self._run_network)
        expected = (1, self.chunks.chunk_frames, self.chunks.bins, self.chunks.channels)
        shape = tuple(self._interpreter.get_input_details()[0]["shape"])
        if shape != expected:
            raise ValueError(f"{self.config['model']}: network input {shape} does not match the config's {expected}")

    def _run_network(self, magnitude):
        self._interpreter.set_tensor(self._input, magnitude)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output)

    def _separate_chunks(self, segments, weights):
        return self.chunks.separate_segments(segments, weights)
