"""Train a separator from one JSON configuration (what ``keras-sep train`` runs).

A configuration has three sections; anything left out takes the defaults
below. ``resolve(config, overrides)`` merges them, ``train(config,
output_dir)`` runs it and writes ``separator.keras`` (waveform in, stems
out: ready for ``keras-sep separate -m``) and ``config.json`` (the resolved
configuration) into ``output_dir``.

    {
      "model": {"preset": "spleeter:2stems", "pretrained": false, "overrides": {}},
      "data": {"source": "bach", "root": null, "targets": null, "tracks": 8,
               "seconds": 30, "batch_size": 4, "augment": true, "seed": 0},
      "training": {"epochs": 10, "steps_per_epoch": 50, "validation_steps": 4,
                   "learning_rate": 1e-4, "loss": "l1", "precision": "auto",
                   "strategy": "auto", "freeze_encoder": false, "patience": 10}
    }

``model.overrides`` are :class:`UNetSeparator` arguments (e.g. smaller
``filters``) and, under ``"signal"``, :class:`WaveformSeparator` ones.
``data.source`` is ``"bach"`` (the built-in dataset), ``"folder"`` (a
MUSDB-layout folder at ``data.root``) or ``"musdb"`` (MUSDB18 at
``data.root`` through the musdb package).
"""
import copy
import inspect
import json
import os

class ConfigError(ValueError):
    """A configuration that cannot be built: its model, preset or data."""


DEFAULTS = {
    "model": {"preset": "spleeter:2stems", "pretrained": False, "overrides": {}},
    "data": {
        "source": "bach", "root": None, "targets": None, "tracks": 8, "seconds": 30.0,
        "batch_size": 4, "augment": True, "seed": 0, "cache": "memory", "is_wav": False,
    },
    "training": {
        "epochs": 10, "steps_per_epoch": 50, "validation_steps": 4, "learning_rate": 1e-4,
        "loss": "l1", "precision": "auto", "strategy": "auto", "freeze_encoder": False,
        "patience": 10,
    },
}


def _merge(base, update):
    merged = copy.deepcopy(base)
    for key, value in (update or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and key != "targets":
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_override(text):
    """``"training.epochs=3"`` → ``(["training", "epochs"], 3)`` (JSON values, else strings)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"override must look like section.key=value, got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.split("."), parsed


# Keys whose values are free-form (their content is checked where used).
_FREE = {("model", "overrides"), ("data", "root"), ("data", "targets"), ("data", "cache")}
# Counts that must be at least this; learning rate and seconds must be > 0.
_AT_LEAST = {("training", "epochs"): 1, ("training", "steps_per_epoch"): 1, ("training", "validation_steps"): 0,
             ("training", "patience"): 1, ("data", "batch_size"): 1, ("data", "tracks"): 1}
_POSITIVE = {("training", "learning_rate"), ("data", "seconds")}


def _check(resolved, where):
    """Unknown keys and values of the wrong type or range: ValueError naming
    the key (a typo such as ``training.epoch`` would otherwise be ignored)."""
    unknown = set(resolved) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"{where}unknown configuration sections {sorted(unknown)}; expected {sorted(DEFAULTS)}")
    for section, defaults in DEFAULTS.items():
        if not isinstance(resolved[section], dict):
            raise ValueError(f"{where}{section} must be an object of settings, got {resolved[section]!r}")
        extra = set(resolved[section]) - set(defaults)
        if extra:
            raise ValueError(f"{where}unknown {section} settings {sorted(extra)}; expected {sorted(defaults)}")
        for key, default in defaults.items():
            value, name = resolved[section][key], f"{section}.{key}"
            if (section, key) in _FREE or default is None:
                continue
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            else:
                ok = isinstance(value, type(default))
            if not ok:
                kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[type(default)]
                raise ValueError(f"{where}{name} must be {kind}, got {value!r}")
            if (section, key) in _AT_LEAST and value < _AT_LEAST[section, key]:
                raise ValueError(f"{where}{name} must be at least {_AT_LEAST[section, key]}, got {value!r}")
            if (section, key) in _POSITIVE and not value > 0:
                raise ValueError(f"{where}{name} must be > 0, got {value!r}")


def resolve(config=None, overrides=()):
    """Defaults ← ``config`` (dict or JSON path) ← ``overrides`` (``a.b=value``).

    Raises:
        ValueError: a missing or malformed file, an unknown section or
            setting, or a value of the wrong type or range (naming it).
    """
    where = ""
    if isinstance(config, (str, os.PathLike)):
        where = f"{os.fspath(config)}: "
        try:
            with open(config, encoding="utf-8") as handle:
                config = json.load(handle)
        except FileNotFoundError:
            raise ValueError(f"{where}no such config file") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{where}not valid JSON ({error})") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"{where}cannot read it ({error})") from None
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"{where}a config is a JSON object of sections, got {type(config).__name__}")
    resolved = _merge(DEFAULTS, config or {})
    _check(resolved, where)
    for text in overrides:
        path, value = parse_override(text)
        node = resolved
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {text!r}: {part} is a value, not a section")
        node[path[-1]] = value
    _check(resolved, "")
    return resolved


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


def _bach_targets(instruments):
    from keras_sep.data import bach

    for grouping in (bach.TWO_STEMS, bach.FOUR_STEMS):
        if set(instruments) == set(grouping):
            return grouping
    raise ValueError(
        f"the built-in dataset has groupings {sorted(bach.TWO_STEMS)} and {sorted(bach.FOUR_STEMS)}; "
        f"give data.targets for instruments {list(instruments)}"
    )


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


# --- Open-Unmix: one network per target ------------------------------------

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
