"""The U-Net recipe: a :class:`WaveformSeparator` built from a preset, its
spectrogram datasets, and :func:`train`, which runs a configuration (and
hands an Open-Unmix preset on to :mod:`keras_sep.recipes.open_unmix`).
"""
import inspect
import json
import os

from keras_sep.recipes.config import ConfigError, _bach_targets
from keras_sep.recipes.open_unmix import _is_open_unmix, train_open_unmix


def build_separator(model_config):
    """The :class:`WaveformSeparator` a configuration describes."""
    from keras_sep import pretrained
    from keras_sep.models import UNetSeparator, WaveformSeparator

    preset = model_config["preset"]
    overrides = dict(model_config.get("overrides") or {})
    signal_overrides = overrides.pop("signal", {})
    # Keras models take unknown keyword arguments silently: a misspelt
    # override would train the preset's architecture without a word.
    for given, cls, where in ((overrides, UNetSeparator, "model.overrides"),
                              (signal_overrides, WaveformSeparator, "model.overrides.signal")):
        known = set(inspect.signature(cls.__init__).parameters) - {"self", "kwargs", "spectrogram_model"}
        if not isinstance(given, dict):
            raise ValueError(f"{where} must be an object of settings, got {given!r}")
        unknown = sorted(set(given) - known)
        if unknown:
            extra = ", and signal" if cls is UNetSeparator else ""
            raise ValueError(f"unknown {where} {unknown}; expected some of {sorted(known)}{extra}")
    signal = dict(pretrained.get_preset(preset)["signal"], **signal_overrides)
    if model_config.get("pretrained"):
        if overrides:
            raise ValueError(f"pretrained models cannot change their architecture, got overrides {sorted(overrides)}")
        loaded = pretrained.load_model(preset)
        return WaveformSeparator(loaded.spectrogram_model, **signal)
    net = UNetSeparator(**dict(pretrained.get_preset(preset)["model"], **overrides))
    return WaveformSeparator(net, **signal)


def datasets(data_config, separator):
    """``(train, validation)`` spectrogram-pair datasets for ``separator``."""
    from keras_sep import data

    settings = data.spectrogram_settings(separator)
    source, seed = data_config["source"], data_config["seed"]
    targets = data_config.get("targets")
    if source == "bach":
        root = data.bach_chorales(num_tracks=data_config["tracks"], seconds=data_config["seconds"], seed=seed)
        targets = targets or _bach_targets(separator.instruments)
    elif source in ("folder", "musdb"):
        root = data_config.get("root")
        if not root:
            raise ValueError(f"data.source={source!r} needs data.root")
    else:
        raise ValueError(f"data.source must be 'bach', 'folder' or 'musdb', got {source!r}")
    augment = data_config["augment"]
    common = dict(targets=targets, samples=settings["samples"], seed=seed, cache=data_config["cache"])
    if source == "musdb":
        make = lambda subset, **kw: data.musdb_dataset(root, subset="train", split=subset, is_wav=data_config["is_wav"], **kw)  # noqa: E731
        train_split, valid_split = "train", "valid"
    else:
        make = lambda subset, **kw: data.stems_dataset(root, subset, **kw)  # noqa: E731
        train_split, valid_split = "train", "test"
    train = make(train_split, remix=augment, gain=(0.25, 1.25) if augment else None,
                 channel_swap=augment, **common)
    valid = make(valid_split, random_chunks=False, **common)
    batch_size = data_config["batch_size"]
    train = data.to_spectrogram_pairs(data.batch(train, batch_size, shuffle_buffer=64, seed=seed), separator)
    valid = data.to_spectrogram_pairs(data.batch(valid, batch_size, repeat=True), separator)
    return train, valid


def train(config, output_dir):
    """Run a resolved configuration; returns ``(separator, history)``.

    An Open-Unmix preset (``umxhq``, ``umxl``, ``umx``) trains one network
    per target instead and returns ``({target: OpenUnmix}, {target:
    history})`` (see :func:`train_open_unmix`).
    """
    from keras_sep import training

    try:
        open_unmix = _is_open_unmix(config["model"]["preset"])
    except ValueError as error:  # an unknown preset
        raise ConfigError(str(error)) from error
    if open_unmix:
        return train_open_unmix(config, output_dir)
    settings = config["training"]
    try:  # what the configuration names: the model, its preset, the data
        precision = training.set_precision(settings["precision"])
        separator = build_separator(config["model"])
        if config["model"].get("pretrained"):
            training.inference_mode_batch_norm(separator.spectrogram_model)
        if settings["freeze_encoder"]:
            training.freeze_encoder(separator.spectrogram_model)
        train_ds, valid_ds = datasets(config["data"], separator)
        os.makedirs(output_dir, exist_ok=True)
    except (ValueError, TypeError, OSError) as error:
        raise ConfigError(str(error)) from error
    net, history = training.fit_separator(
        separator.spectrogram_model, train_ds, valid_ds, epochs=settings["epochs"],
        steps_per_epoch=settings["steps_per_epoch"], validation_steps=settings["validation_steps"],
        learning_rate=settings["learning_rate"], loss=settings["loss"], output_dir=output_dir,
        strategy=settings["strategy"], precision=precision, patience=settings["patience"],
        config=config,
    )
    trained = separator.with_spectrogram_model(net)
    path = os.path.join(output_dir, "separator.keras")
    trained.save(path)
    with open(os.path.join(output_dir, "config.json"), "w", encoding="utf-8") as handle:
        json.dump(dict(config, resolved_precision=precision), handle, indent=2)
    return trained, history
