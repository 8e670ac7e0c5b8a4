"""Waveform examples to a spectrogram separator's ``(input, targets)`` pairs."""
import tensorflow as tf

from keras_sep.ops import stft as stft_ops

MIXTURE = "mixture"


def spectrogram_settings(model=None, frame_length=4096, frame_step=1024, bins=None,
                         frames=None, instruments=None):
    """The STFT and crop a separator trains on, as a dict.

    Taken from ``model`` when given: a :class:`WaveformSeparator` gives its
    ``frame_length``, ``frame_step``, ``chunk_frames`` and the bins and
    instruments of its spectrogram model; a spectrogram model alone (e.g.
    :class:`UNetSeparator`) gives ``bins``, ``frames`` and ``instruments``
    with the default STFT. Explicit arguments override the model's values.
    """
    settings = {"frame_length": frame_length, "frame_step": frame_step}
    if model is not None:
        net = getattr(model, "spectrogram_model", model)
        settings.update(bins=net.bins, frames=net.frames, instruments=tuple(net.instruments))
        if net is not model:
            settings.update(
                frame_length=model.frame_length, frame_step=model.frame_step,
                frames=model.chunk_frames,
            )
    for name, value in (("bins", bins), ("frames", frames), ("instruments", instruments)):
        if value is not None:
            settings[name] = tuple(value) if name == "instruments" else int(value)
    missing = [name for name in ("bins", "frames", "instruments") if name not in settings]
    if missing:
        raise ValueError(f"give a model or {missing}")
    if settings["bins"] > settings["frame_length"] // 2 + 1:
        raise ValueError(
            f"bins={settings['bins']} exceeds the {settings['frame_length'] // 2 + 1} bins "
            f"of frame_length={settings['frame_length']}"
        )
    settings["samples"] = (settings["frames"] - 1) * settings["frame_step"] + settings[
        "frame_length"
    ]
    return settings


def to_spectrogram_pairs(dataset, model=None, **settings):
    """Map waveform examples to ``(mixture magnitude, {instrument: magnitude})``.

    The transform is the one :class:`WaveformSeparator` applies to each
    chunk: periodic Hann STFT with no padding, magnitude of the bins below
    the network's cutoff. Each waveform is cut (or zero-padded at its end)
    to exactly the ``settings["samples"]`` samples that ``frames`` frames
    span, so draw chunks of that length (``spectrogram_settings(model)
    ["samples"]``) to use all of them.

    Args:
        dataset: unbatched (or batched) examples holding ``"mixture"`` and
            every instrument of the model.
        model: a :class:`WaveformSeparator` or a spectrogram separator.
        **settings: overrides for :func:`spectrogram_settings`.

    Returns:
        dataset of ``(mixture (frames, bins, 2), {instrument: (frames, bins,
        2)})`` float32 (with a leading batch axis if the input had one),
        ready for ``model.fit`` on the spectrogram model with an L1 loss.
    """
    config = spectrogram_settings(model, **settings)
    names = config["instruments"]
    missing = [name for name in (MIXTURE,) + names if name not in dataset.element_spec]
    if missing:
        raise ValueError(
            f"the examples lack {missing}; they hold {sorted(dataset.element_spec)}"
        )
    batched = dataset.element_spec[MIXTURE].shape.rank == 3
    length = config["samples"]

    def magnitude_spectrogram(waveform):
        waveform = waveform if batched else waveform[None]
        waveform = stft_ops.fit_length(tf.cast(waveform, tf.float32), length)
        spectrogram = stft_ops.stft(
            waveform, config["frame_length"], config["frame_step"], window="hann"
        )
        magnitude = tf.abs(spectrogram[:, : config["frames"], : config["bins"], :])
        return magnitude if batched else magnitude[0]

    def waveforms_to_magnitudes(example):
        targets = {name: magnitude_spectrogram(example[name]) for name in names}
        return magnitude_spectrogram(example[MIXTURE]), targets

    return dataset.map(waveforms_to_magnitudes, num_parallel_calls=tf.data.AUTOTUNE)
