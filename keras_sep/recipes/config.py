"""``keras-sep train``'s configuration: its defaults, the checks of every
setting, ``section.key=value`` overrides, the targets the built-in data
defaults to, and the error a configuration that cannot be built raises.
"""
import copy
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


def _bach_targets(instruments):
    from keras_sep.data import bach

    for grouping in (bach.TWO_STEMS, bach.FOUR_STEMS):
        if set(instruments) == set(grouping):
            return grouping
    raise ValueError(
        f"the built-in dataset has groupings {sorted(bach.TWO_STEMS)} and {sorted(bach.FOUR_STEMS)}; "
        f"give data.targets for instruments {list(instruments)}"
    )
