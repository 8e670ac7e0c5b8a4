"""LiteRT exports kept in keras_sep's cache, one per model's weights.

A cached export is found without TensorFlow: it is keyed by the sha256 of
the weights it was converted from (a ``.keras`` file's own, or the one a
preset's cached ``model.json`` records), and it is used only while its
``.tflite`` still has the sha256 its config records; anything else is
removed and made again, never trusted.
"""
import functools
import json
import logging
import os

from keras_sep import pretrained
from keras_sep._cache import cache_dir, remove_tree, replace_folder
from keras_sep.litert.separator import CONFIG_NAME, read_config

logger = logging.getLogger(__name__)


def source_key(model):
    """The sha256 that identifies the weights of ``model`` (a preset name or a
    ``.keras`` file) without loading them, or None where it is not known yet
    (a preset whose weights were never fetched, a missing file)."""
    name = os.fspath(model)
    if os.path.isfile(name):
        stat = os.stat(name)
        return _file_key(os.path.abspath(name), stat.st_size, stat.st_mtime_ns)
    if name not in pretrained.presets():
        return None
    folder = os.path.join(cache_dir(), pretrained._slug(name))
    try:
        with open(os.path.join(folder, "model.json"), encoding="utf-8") as handle:
            return json.load(handle).get("sha256") if os.path.isfile(os.path.join(folder, "model.keras")) else None
    except (OSError, ValueError):
        return None


@functools.lru_cache(maxsize=16)
def _file_key(path, size, mtime_ns):
    """A ``.keras`` file's sha256, hashed once per process while its size and
    modification time stay (the engine choice and the saved plan's key
    both ask, before TensorFlow starts)."""
    return pretrained.sha256(path)


def folder(key):
    """Where the export converted from the weights with sha256 ``key`` lives."""
    return os.path.join(cache_dir(), "litert", key[:32])


def cached_export(model):
    """The cached export of ``model``'s weights, checked, or None."""
    key = source_key(model)
    if key is None:
        return None
    path = folder(key)
    if not os.path.isfile(os.path.join(path, CONFIG_NAME)):
        return None
    try:
        config = read_config(path)
        source = (config.get("source") or {}).get("sha256")
        valid = source == key and config.get("sha256") == pretrained.sha256(config["model"])
    except (OSError, ValueError):
        valid = False
    if not valid:
        logger.warning("%s: stale or corrupt LiteRT export in the cache; it is made again", path)
        remove_tree(path)
        return None
    return path


def store(model, write):
    """Make the cached export of ``model``: ``write(folder, source)`` writes it
    (e.g. :func:`keras_sep.export.export_litert` with the separator) into a
    temporary folder that is renamed into place once complete. Returns its
    folder, or None when ``model``'s weights have no key (see
    :func:`source_key`)."""
    key = source_key(model)
    if key is None:
        return None
    return replace_folder(folder(key), lambda partial: write(partial, {"model": os.fspath(model), "sha256": key}))
