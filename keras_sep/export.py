"""Export a separator as a SavedModel that TF Serving loads.

The SavedModel's ``serving_default`` signature takes ``waveform``, float32
``(samples, channels)`` at the model's sample rate, of any length, and
returns one float32 ``(samples, channels)`` waveform per instrument, named
after it. Write it into a numbered version folder (``models/unet/1``), the
layout TF Serving watches.
"""
import json
import logging
import os

import tensorflow as tf


class _ServingModule(tf.Module):
    def __init__(self, model, overlap_frames, network=None):
        super().__init__()
        overlap = int(overlap_frames)
        self.sample_rate = tf.constant(model.sample_rate, name="sample_rate")
        if network is None:
            self.model = model  # tracked: the function reads its variables
        # Otherwise the plan's weights are constants of the function, and the
        # model stays untracked so that its variables are not saved as well.
        @tf.function
        def serve(waveform):
            stems = model.separate_waveform(waveform[None], overlap, network=network)
            return {name: value[0] for name, value in stems.items()}

        self.serve = serve


def serving_network(model):
    """The network an export runs: the U-Nets' inference plan in plain
    TensorFlow ops (no XLA, which not every TF Serving build has) with
    the operator forms fixed rather than timed, since the serving machine is
    not this one; ``None`` (the Keras layers) for other networks."""
    from keras_sep.inference import inference_plan

    if not hasattr(model, "spectrogram_model"):  # Open-Unmix: no plan, its Keras layers
        return None
    return inference_plan(model.spectrogram_model, jit_compile=False)


def export_saved_model(separator, path, fast=True):
    """Write ``separator`` (a :class:`keras_sep.Separator`, a
    :class:`~keras_sep.models.WaveformSeparator` or an
    :class:`~keras_sep.models.OpenUnmixSeparator`) as a SavedModel at ``path``.

    The chunking of a ``Separator`` (overlapping or Spleeter's) is kept.
    A ``keras_sep.json`` with the sample rate, instruments and chunking is
    written into the SavedModel's ``assets.extra`` folder for clients.
    ``fast``: serve the U-Nets through their inference plan
    (:func:`serving_network`: batch norms folded, cheaper transposed
    convolutions; the same function to float32 rounding, about 12 % faster
    than the Keras layers on two Zen 4 cores) rather than the Keras layers.

    Returns:
        ``path``.
    """
    model, overlap = _check_exportable(separator)
    module = _ServingModule(model, overlap, serving_network(model) if fast else None)
    signature = module.serve.get_concrete_function(
        tf.TensorSpec((None, model.channels), tf.float32, name="waveform")
    )
    tf.saved_model.save(module, path, signatures={"serving_default": signature})
    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "keras_sep.json"), "w", encoding="utf-8") as handle:
        json.dump(
            {
                "sample_rate": model.sample_rate,
                "channels": model.channels,
                "instruments": list(model.instruments),
                "overlap_frames": overlap,
            },
            handle,
            indent=2,
        )
    return path


def _check_exportable(separator):
    """The model and overlap of ``separator`` after the checks both exports share."""
    if getattr(separator, "mwf", False):
        raise ValueError(
            "a separator with mwf=True cannot be exported: multichannel Wiener filtering needs two passes "
            "over the song, the serving signature makes one"
        )
    if getattr(separator, "phase", "mixture") != "mixture":
        raise ValueError(
            f"a separator with phase={separator.phase!r} cannot be exported: the serving signature keeps "
            "the mixture phase; export one with phase='mixture'"
        )
    model = getattr(separator, "model", separator)
    return model, getattr(separator, "overlap_frames", model.overlap_frames)


def litert_network(model):
    """The LiteRT flatbuffer (bytes) of ``model``'s spectrogram network for
    one chunk: input the magnitude ``(1, chunk_frames, bins, channels)``,
    output the instruments' estimates stacked ``(instruments, 1,
    chunk_frames, bins, channels)``, float32, LiteRT's built-in operators
    only (the runtime needs no TensorFlow ops). The Keras layers are
    converted with their weights frozen into constants; the converter folds
    the batch norms itself. A fixed input shape lets XNNPACK plan every
    operator once."""
    net = model.spectrogram_model
    spec = tf.TensorSpec((1, model.chunk_frames, net.bins, model.channels), tf.float32, name="magnitude")

    @tf.function(input_signature=[spec], autograph=False)
    def estimates(magnitude):
        out = net(magnitude, training=False)
        return tf.stack([tf.cast(out[name], tf.float32) for name in model.instruments])

    # Without the model as trackable object the converter freezes the
    # variables; with it (TF 2.21) they stay resource variables, which the
    # runtime reads uninitialised (NaN outputs). The converter logs that
    # path's deprecation through absl on every call: kept off the user's
    # screen for this call only.
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)
    try:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([estimates.get_concrete_function()])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return converter.convert()
    except Exception as error:  # the converter's own error types; say which network failed, on one line
        from keras_sep.audio import one_line

        raise ValueError(f"{net.name}: cannot convert to LiteRT built-in operators ({one_line(error)})") from None
    finally:
        absl.setLevel(level)


def _chunk_config(model, overlap):
    """The chunk layout and signal path an export's runner needs (``keras_sep.json``)."""
    return {
        "sample_rate": model.sample_rate,
        "channels": model.channels,
        "instruments": list(model.instruments),
        "frame_length": model.frame_length,
        "frame_step": model.frame_step,
        "bins": model.spectrogram_model.bins,
        "chunk_frames": model.chunk_frames,
        "overlap_frames": model.overlap_frames,
        "chunking": "spleeter" if overlap == 0 and model.overlap_frames else "overlap",
        "mask_extension": model.mask_extension,
        "separation_exponent": model.separation_exponent,
        "window": "hann",
    }


def _write_config(path, config):
    """Write ``keras_sep.json`` last, after what it describes, under a temporary name."""
    from keras_sep.separation.chunked import CONFIG_NAME

    config_path = os.path.join(path, CONFIG_NAME)
    with open(config_path + ".partial", "w", encoding="utf-8") as handle:
        json.dump(config, handle, indent=2)
    os.replace(config_path + ".partial", config_path)


def export_plan(separator, path, source=None):
    """Save what ``separator`` (a :class:`keras_sep.Separator` of a
    :class:`~keras_sep.models.WaveformSeparator`) computes per chunk as
    the folder ``path``, for :class:`keras_sep.separation.saved_plan.SavedPlanSeparator`:
    a SavedModel of :meth:`~keras_sep.Separator.chunk_module` (its
    inference plan as this machine's timings chose it, its precision and
    phase) and ``keras_sep.json``, the chunk layout with the sha256 of every
    file of the SavedModel and ``source`` (any JSON-able description of
    where the model came from), written last.

    Returns:
        ``path``.

    Raises:
        ValueError: ``mwf=True`` (two passes over the song), or an
            Open-Unmix separator (its chunks are the song's centred frames).
    """
    from keras_sep.separation import saved_plan

    model = separator.model
    if not hasattr(model, "spectrogram_model"):
        raise ValueError(f"{model.name}: only U-Net separators (WaveformSeparator) save their chunk plan")
    module = separator.chunk_module()
    # The function is traced already where the separator has run; its
    # variables (without a plan) or constants (the plan's) are written beside it.
    tf.saved_model.save(module, path)
    config = {
        "format": saved_plan.FORMAT,
        "format_version": saved_plan.FORMAT_VERSION,
        **_chunk_config(model, separator.overlap_frames),
        "precision": separator.precision,
        "phase": separator.phase,
        "phase_iterations": separator.phase_iterations if separator.phase != "mixture" else 0,
        "files": saved_plan.file_digests(path),
        "source": source,
    }
    _write_config(path, config)
    return path


def export_litert(separator, path, source=None):
    """Write ``separator`` (a :class:`keras_sep.Separator` or a
    :class:`~keras_sep.models.WaveformSeparator`) as a LiteRT export: the
    folder ``path`` with ``separator.tflite`` (:func:`litert_network`) and
    ``keras_sep.json``, the resolved config that
    :class:`keras_sep.litert.LiteRTSeparator` runs it with (sample rate,
    channels, instruments, frame length and step, bins, chunk frames,
    overlap, chunking, mask extension and exponent, the ``.tflite``'s
    sha256, and ``source``, any JSON-able description of where the model
    came from). The config is written last, after the network, so a
    half-written export fails its checksum rather than run.

    Returns:
        ``path``.
    """
    from keras_sep import litert
    from keras_sep.pretrained import sha256

    model, overlap = _check_exportable(separator)
    data = litert_network(model)
    os.makedirs(path, exist_ok=True)
    target = os.path.join(path, litert.MODEL_NAME)
    with open(target + ".partial", "wb") as handle:
        handle.write(data)
    os.replace(target + ".partial", target)
    config = {
        "format": litert.FORMAT,
        "format_version": litert.FORMAT_VERSION,
        "model": litert.MODEL_NAME,
        "sha256": sha256(data),
        **_chunk_config(model, overlap),
        "source": source,
    }
    _write_config(path, config)
    return path
