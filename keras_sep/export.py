"""Export a separator as a SavedModel that TF Serving loads.

The SavedModel's ``serving_default`` signature takes ``waveform``, float32
``(samples, channels)`` at the model's sample rate, of any length, and
returns one float32 ``(samples, channels)`` waveform per instrument, named
after it. Write it into a numbered version folder (``models/unet/1``), the
layout TF Serving watches.
"""
import json
import os

import tensorflow as tf


class _ServingModule(tf.Module):
    def __init__(self, model, overlap_frames):
        super().__init__()
        self.model = model
        self.overlap_frames = int(overlap_frames)
        self.sample_rate = tf.constant(model.sample_rate, name="sample_rate")

    @tf.function
    def serve(self, waveform):
        stems = self.model(waveform[None], training=False, overlap_frames=self.overlap_frames)
        return {name: value[0] for name, value in stems.items()}


def export_saved_model(separator, path):
    """Write ``separator`` (a :class:`keras_sep.Separator` or a
    :class:`~keras_sep.models.WaveformSeparator`) as a SavedModel at ``path``.

    The chunking of a ``Separator`` (overlapping or Spleeter's) is kept.
    A ``keras_sep.json`` with the sample rate, instruments and chunking is
    written into the SavedModel's ``assets.extra`` folder for clients.

    Returns:
        ``path``.
    """
    model = getattr(separator, "model", separator)
    overlap = getattr(separator, "overlap_frames", model.overlap_frames)
    module = _ServingModule(model, overlap)
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
