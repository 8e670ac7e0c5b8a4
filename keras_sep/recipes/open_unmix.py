"""The Open-Unmix recipe: one :class:`~keras_sep.models.OpenUnmix` network
per target, trained (or fine-tuned) from a ``keras-sep train`` configuration
whose preset is ``umxhq``, ``umxl`` or ``umx``.
"""
import inspect
import json
import os

from keras_sep.recipes.config import ConfigError, _bach_targets

# Upstream trains on 6-second excerpts: 255 frames of hop 1024 at 44.1 kHz.
_UMX_FRAMES = 255
_UMX_BANDWIDTH_HZ = 16000
_UMX_SIGNAL = ("sample_rate", "frame_length", "frame_step", "frames")


def _is_open_unmix(preset):
    from keras_sep import pretrained

    return pretrained.get_preset(preset).get("checkpoint", {}).get("format") == "open-unmix-pth"


def _open_unmix_settings(model_config):
    """``(OpenUnmix arguments, signal settings, targets)`` of a configuration."""
    from keras_sep import pretrained
    from keras_sep.models import OpenUnmix, bandwidth_to_max_bin

    spec = pretrained.get_preset(model_config["preset"])
    overrides = dict(model_config.get("overrides") or {})
    signal_overrides = overrides.pop("signal", {})
    known = set(inspect.signature(OpenUnmix.__init__).parameters) - {
        "self", "kwargs", "target", "nb_bins", "input_mean", "input_scale"}
    for given, expected, where in ((overrides, known, "model.overrides"),
                                   (signal_overrides, set(_UMX_SIGNAL), "model.overrides.signal")):
        if not isinstance(given, dict):
            raise ValueError(f"{where} must be an object of settings, got {given!r}")
        unknown = sorted(set(given) - expected)
        if unknown:
            raise ValueError(f"unknown {where} {unknown}; expected some of {sorted(expected)}")
    if model_config.get("pretrained") and (overrides or signal_overrides):
        raise ValueError("pretrained models cannot change their architecture or signal, "
                         f"got overrides {sorted(overrides) + sorted(signal_overrides)}")
    signal = {"sample_rate": spec["signal"]["sample_rate"], "frame_length": spec["signal"]["frame_length"],
              "frame_step": spec["signal"]["frame_step"], "frames": _UMX_FRAMES, **signal_overrides}
    model = dict(spec["model"], **overrides)
    model["nb_bins"] = signal["frame_length"] // 2 + 1
    if "max_bin" not in overrides and signal_overrides:
        model["max_bin"] = bandwidth_to_max_bin(signal["sample_rate"], signal["frame_length"], _UMX_BANDWIDTH_HZ)
    return model, signal, list(spec["checkpoint"]["targets"])


def train_open_unmix(config, output_dir):
    """Train (or, with ``model.pretrained``, fine-tune) an Open-Unmix preset.

    Each target gets its own :class:`~keras_sep.models.OpenUnmix`, fitted
    with Open-Unmix's MSE on magnitudes (``training.loss`` should be
    ``"mse"``) on chunks of ``model.overrides.signal.frames`` frames (255
    by default: upstream's 6 s); a network trained from scratch starts its
    input normalisation at the training tracks' statistics
    (``training.input_statistics``). Writes ``<target>.keras``, each
    target's training files in ``<target>/`` and ``config.json`` into
    ``output_dir``.

    ``data.targets`` (or, for the built-in data, its 4-stem grouping) must
    hold the preset's targets; ``model.overrides`` are ``OpenUnmix``
    arguments and, under ``"signal"``, ``sample_rate``, ``frame_length``,
    ``frame_step`` and ``frames`` (``nb_bins`` follows from the frame
    length; ``max_bin`` from a 16 kHz bandwidth unless given).

    Returns:
        ``({target: OpenUnmix}, {target: history})``.
    """
    from keras_sep import pretrained, training
    from keras_sep.models import OpenUnmix

    settings = config["training"]
    try:  # what the configuration names: the model, its preset, the data
        if settings["freeze_encoder"]:
            raise ValueError("training.freeze_encoder applies to U-Nets, not Open-Unmix")
        precision = training.set_precision(settings["precision"])
        model_args, signal, targets = _open_unmix_settings(config["model"])
        data_config = dict(config["data"])
        if data_config["source"] == "bach" and not data_config.get("targets"):
            data_config["targets"] = _bach_targets(targets)
        stft = dict(frame_length=signal["frame_length"], frame_step=signal["frame_step"],
                    bins=model_args["nb_bins"], frames=signal["frames"], instruments=tuple(targets))
        train_ds, valid_ds, stats_ds = _open_unmix_datasets(data_config, stft, signal["sample_rate"])
        if config["model"].get("pretrained"):
            nets = pretrained.load_open_unmix(config["model"]["preset"])
        else:
            mean, std = training.input_statistics(stats_ds)
            nets = {t: OpenUnmix(target=t, input_mean=mean, input_scale=std, **model_args) for t in targets}
        os.makedirs(output_dir, exist_ok=True)
    except (ValueError, TypeError, OSError) as error:
        raise ConfigError(str(error)) from error
    models, histories = {}, {}
    for target, net in nets.items():
        models[target], histories[target] = training.fit_separator(
            net, train_ds, valid_ds, epochs=settings["epochs"], steps_per_epoch=settings["steps_per_epoch"],
            validation_steps=settings["validation_steps"], learning_rate=settings["learning_rate"],
            loss=settings["loss"], output_dir=os.path.join(output_dir, target), strategy=settings["strategy"],
            precision=precision, patience=settings["patience"], config=config,
        )
        models[target].save(os.path.join(output_dir, f"{target}.keras"))
    with open(os.path.join(output_dir, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(dict(config, resolved_precision=precision, resolved_signal=signal,
                       resolved_model=model_args), handle, indent=2)
    return models, histories


def _open_unmix_datasets(data_config, stft, sample_rate):
    """Training and validation pairs, and the training tracks read once in
    order without augmentation (for the input statistics)."""
    from keras_sep import data

    source, seed = data_config["source"], data_config["seed"]
    if source == "bach":
        root = data.bach_chorales(num_tracks=data_config["tracks"], seconds=data_config["seconds"], seed=seed)
    elif source == "folder" and data_config.get("root"):
        root = data_config["root"]
    else:
        raise ValueError(f"Open-Unmix trains on data.source 'bach' or 'folder' (with data.root), got {source!r}")
    samples = (stft["frames"] - 1) * stft["frame_step"] + stft["frame_length"]
    common = dict(targets=data_config.get("targets"), samples=samples, seed=seed, cache=data_config["cache"],
                  sample_rate=sample_rate)
    augment = data_config["augment"]
    train = data.stems_dataset(root, "train", remix=augment, gain=(0.25, 1.25) if augment else None,
                               channel_swap=augment, **common)
    valid = data.stems_dataset(root, "test", random_chunks=False, **common)
    whole = data.stems_dataset(root, "train", random_chunks=False, **common)
    size = data_config["batch_size"]
    return (data.to_spectrogram_pairs(data.batch(train, size, shuffle_buffer=64, seed=seed), **stft),
            data.to_spectrogram_pairs(data.batch(valid, size, repeat=True), **stft),
            data.to_spectrogram_pairs(data.batch(whole, size, repeat=False, drop_remainder=False), **stft))
