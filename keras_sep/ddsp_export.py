"""Export a DDSPAutoencoder as a SavedModel that TF Serving loads.

Two signatures, both channels-last float32 with dynamic batch and length:

- ``serving_default`` (controls in): ``f0_hz`` and ``loudness_db``, each
  ``(batch, frames, 1)`` (and ``audio`` ``(batch, frames * frame_step, 1)``
  for a model with a latent), to ``{"audio": (batch, frames * frame_step,
  1)}``.
- ``audio`` (audio in): ``audio`` ``(batch, samples, 1)`` at the model's
  rate to ``{"audio", "f0_hz", "f0_confidence", "loudness_db"}``, with
  ``frames = samples // frame_step``. The loudness is computed in the graph
  (:func:`keras_sep.ops.loudness.loudness_db`), and so is f0 with the CREPE
  network of :func:`keras_sep.data.track_pitch` (its pretrained weights
  become part of the SavedModel), framed and decoded as ``track_pitch``
  does. CREPE reads 16 kHz audio; for a model at another rate, or with
  ``pitch="input"``, the signature takes ``f0_hz`` as an input instead and
  returns no confidence.

Write it into a numbered version folder (``serving/violin/1``), the layout
TF Serving watches.
"""
import json
import os

import keras
import tensorflow as tf

from keras_sep.data import pitch as pitch_tracking
from keras_sep.ops.loudness import loudness_db

PITCH_MODES = ("crepe", "input")


def crepe_f0(crepe, audio, frame_step):
    """f0 (Hz) and confidence ``(batch, samples // frame_step, 1)`` of 16 kHz
    ``audio`` ``(batch, samples, 1)`` with a CREPE network, in TensorFlow.

    Window ``t`` has 1024 samples centred on sample ``t * frame_step``, is
    normalised to zero mean and unit deviation, and the activations are
    decoded by the weighted mean in cents of the 9 bins around the peak, as
    :func:`keras_sep.data.track_pitch` does.
    """
    size = pitch_tracking.CREPE_FRAME
    signal = tf.cast(audio, tf.float32)[..., 0]
    batch, samples = tf.shape(signal)[0], tf.shape(signal)[1]
    frames = samples // frame_step
    padded = tf.pad(signal, [[0, 0], [size // 2, size // 2]])
    windows = tf.signal.frame(padded, size, frame_step)[:, :frames]  # (batch, frames, size)
    windows -= tf.reduce_mean(windows, axis=-1, keepdims=True)
    std = tf.math.reduce_std(windows, axis=-1, keepdims=True)
    windows /= tf.where(std > 0, std, tf.ones_like(std))
    activation = crepe(tf.reshape(windows, [-1, size]), training=False)  # (batch * frames, 360)
    activation = tf.cast(activation, tf.float32)
    peak = tf.argmax(activation, axis=-1, output_type=tf.int32)
    start = tf.clip_by_value(peak - 4, 0, activation.shape[-1] - 9)
    index = start[:, None] + tf.range(9)
    weights = tf.gather(activation, index, batch_dims=1)
    cents = tf.gather(tf.constant(pitch_tracking._CREPE_CENTS, tf.float32), index)
    cents = tf.reduce_sum(weights * cents, -1) / tf.maximum(tf.reduce_sum(weights, -1), 1e-12)
    shape = tf.stack([batch, frames, 1])
    f0 = tf.reshape(10.0 * 2.0 ** (cents / 1200.0), shape)
    confidence = tf.reshape(tf.reduce_max(activation, axis=-1), shape)
    return f0, confidence


class _DDSPServing(tf.Module):
    def __init__(self, model, crepe):
        super().__init__()
        self.model = model  # tracked: the functions read its variables
        self.crepe = crepe
        step, rate = model.frame_step, model.sample_rate
        latent = model.z_units is not None

        def controls(f0_hz, loudness_db, audio=None):
            inputs = {"f0_hz": f0_hz, "loudness_db": loudness_db}
            if latent:
                inputs["audio"] = audio
            return {"audio": model(inputs, training=False)}

        def from_audio(audio, f0_hz=None):
            frames = tf.shape(audio)[1] // step
            audio = audio[:, : frames * step]
            outputs = {"loudness_db": loudness_db(audio, rate, step)}
            if crepe is not None:
                f0_hz, outputs["f0_confidence"] = crepe_f0(crepe, audio, step)
            outputs["f0_hz"] = f0_hz
            outputs["audio"] = controls(f0_hz, outputs["loudness_db"], audio)["audio"]
            return outputs

        self.controls = tf.function(controls)
        self.from_audio = tf.function(from_audio)


def export_ddsp_saved_model(model, path, pitch="crepe", crepe_capacity="tiny"):
    """Write a :class:`~keras_sep.models.DDSPAutoencoder` as a SavedModel at
    ``path`` with the two signatures of this module's docstring.

    Args:
        model: the model.
        path: the SavedModel folder.
        pitch: ``"crepe"``: f0 tracked in the graph (a 16 kHz model and an
            installed CREPE are needed); ``"input"``: f0 is an input of the
            ``audio`` signature.
        crepe_capacity: the CREPE size, as in :func:`~keras_sep.data.track_pitch`.

    Returns:
        ``path``. A ``keras_sep.json`` with the rate, frame step and the
        signatures' inputs is written into ``assets.extra`` for clients.
    """
    if pitch not in PITCH_MODES:
        raise ValueError(f"pitch must be one of {PITCH_MODES}, got {pitch!r}")
    if pitch == "crepe" and model.sample_rate != pitch_tracking.CREPE_SAMPLE_RATE:
        raise ValueError(f"f0 in the graph needs a 16000 Hz model (CREPE's rate), got {model.sample_rate}; "
                         "use pitch='input'")
    crepe = None
    if pitch == "crepe":
        # The same layers as a Sequential model: the package's subclassed
        # model has no input shape, which Keras needs for the default
        # signature it traces for every model a SavedModel holds.
        network = pitch_tracking.crepe_model(crepe_capacity)
        crepe = keras.Sequential([keras.Input((pitch_tracking.CREPE_FRAME,)), *network.layers[1:]], name="crepe")
    module = _DDSPServing(model, crepe)
    audio = tf.TensorSpec((None, None, 1), tf.float32, "audio")
    control_specs = [tf.TensorSpec((None, None, 1), tf.float32, "f0_hz"),
                     tf.TensorSpec((None, None, 1), tf.float32, "loudness_db")]
    if model.z_units is not None:
        control_specs.append(audio)
    audio_specs = [audio] if crepe is not None else [audio, tf.TensorSpec((None, None, 1), tf.float32, "f0_hz")]
    signatures = {"serving_default": module.controls.get_concrete_function(*control_specs),
                  "audio": module.from_audio.get_concrete_function(*audio_specs)}
    tf.saved_model.save(module, path, signatures=signatures)
    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with open(os.path.join(extra, "keras_sep.json"), "w", encoding="utf-8") as handle:
        json.dump({"sample_rate": model.sample_rate, "frame_step": model.frame_step, "pitch": pitch,
                   "signatures": {name: [spec.name for spec in specs] for name, specs in
                                  (("serving_default", control_specs), ("audio", audio_specs))}},
                  handle, indent=2)
    return path

