"""Saved separation plans that ``keras-sep separate`` starts from.

A process that separates with the Keras model imports Keras, builds the
model, reads its weights, makes the inference plan and traces it: about
two seconds before its first chunk. Once a run has timed this machine's
operator forms completely, the command saves what it ran per chunk
(:func:`keras_sep.export.export_plan`) in ``$KERAS_SEP_CACHE/plans/KEY``;
later runs with the same model and options on the same machine load that
(:class:`~keras_sep.separation.saved_plan.SavedPlanSeparator`) without
importing Keras at all. ``keras-sep tune`` saves it ahead of time.

KEY covers the weights' sha256, the precision and phase options, the
machine as the XLA cache sees it (TensorFlow version, processor and its
flags, cores, XLA and oneDNN settings), the Keras version and keras_sep's
own code. Each entry's files are checked against the sha256 its config
records (in a thread, while TensorFlow is imported); a stale, corrupt or
half-written entry is removed and made again, never used. Saving a plan
removes those it supersedes (the same weights, options and machine, saved
by another Keras or keras_sep) and those no run has loaded for 30 days.
On a machine with a GPU no plan is saved or used (the Keras model runs
there).
``KERAS_SEP_PLAN_CACHE=0`` (or ``KERAS_SEP_TUNE=0``) turns it off.
"""
import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import threading
import time

import keras_sep
from keras_sep import _cache, _cli_xla_store

logger = logging.getLogger("keras_sep.cli")

ENVIRONMENT = "KERAS_SEP_PLAN_CACHE"
# Saved plans no run has loaded for this long are removed when another is
# saved (about 80 MB each for Spleeter's 2 stems).
UNUSED_DAYS = 30
_code_digest = None


def enabled():
    """False when ``KERAS_SEP_PLAN_CACHE`` or ``KERAS_SEP_TUNE`` is ``0``, ``false``, ``no`` or ``off``."""
    return _cache.switched_on(ENVIRONMENT, "KERAS_SEP_TUNE")


def code_digest():
    """The sha256 of keras_sep's Python sources (what traced the plan)."""
    global _code_digest
    if _code_digest is None:
        digest = hashlib.sha256()
        root = os.path.dirname(os.path.abspath(keras_sep.__file__))
        for folder, dirs, names in os.walk(root):
            dirs.sort()
            for name in sorted(names):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    digest.update(os.path.relpath(path, root).encode() + b"\0")
                    with open(path, "rb") as handle:
                        digest.update(handle.read())
        _code_digest = digest.hexdigest()
    return _code_digest


def served_options(args):
    """``(precision, phase, phase_iterations)`` of a ``separate`` request that
    a saved plan serves, or None: ``--mwf`` (two passes over the song),
    ``--batch-size`` above 1 (the plan runs one chunk per call, as files
    do), a LiteRT export as the model."""
    from keras_sep import _cli_engine
    from keras_sep.separation.options import DEFAULT_PHASE_ITERATIONS

    if args.mwf or (args.batch_size or 1) != 1 or _cli_engine.is_litert_export(args.model):
        return None
    iterations = 0
    if args.phase != "mixture":
        iterations = DEFAULT_PHASE_ITERATIONS if args.phase_iterations is None else int(args.phase_iterations)
    return args.precision, args.phase, iterations


def key_fields(model, options):
    """What the saved plan of ``model`` (a preset or a ``.keras`` file) with
    ``options`` (:func:`served_options`) on this machine depends on, or None
    where the weights have no sha256 yet (a preset never fetched)."""
    from keras_sep.litert import cache as litert_cache

    source = litert_cache.source_key(model)
    if source is None:
        return None
    try:
        keras_version = importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        keras_version = None
    return {
        "weights": source, "options": list(options), "machine": _cli_xla_store.machine_key(), "keras": keras_version,
        "keras_sep": keras_sep.__version__, "code": code_digest(),
    }


def key(model, options):
    """The cache key of :func:`key_fields`, or None."""
    fields = key_fields(model, options)
    return None if fields is None else _digest(fields)


def _digest(fields):
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def prune(keep, fields, days=UNUSED_DAYS, clock=time.time):
    """Remove the saved plans that ``keep`` (just saved, of ``fields``)
    supersedes (the same weights, options and machine, made by another
    Keras or keras_sep: no run will find them again), those unused for
    ``days`` (a run touches the plan it loads), abandoned partial folders
    and what interrupted removals left (:func:`keras_sep._cache.prune_folders`);
    returns the removed folders."""
    from keras_sep.separation.saved_plan import CONFIG_NAME

    same = {name: fields[name] for name in ("weights", "options", "machine")}

    def superseded(path):
        try:
            with open(os.path.join(path, CONFIG_NAME), encoding="utf-8") as handle:
                theirs = (json.load(handle).get("source") or {}).get("fields") or {}
        except (OSError, ValueError):  # a partial folder or a broken entry: gone once old
            return False
        return {name: theirs.get(name) for name in same} == same

    root, keep_name = os.path.split(keep)
    removed = _cache.prune_folders(root, keep_name, days, lambda path, unused: unused or superseded(path), clock)
    for name in removed:
        logger.debug("removed the saved plan %s", os.path.join(root, name))
    return [os.path.join(root, name) for name in removed]


def folder(entry_key):
    """Where the saved plan of ``entry_key`` lives."""
    return os.path.join(_cache.cache_dir(), "plans", entry_key)


class Lookup:
    """A cached plan's check (of :func:`cached_folder`), run in a thread from
    when it is made: hashing its 80 MB overlaps TensorFlow's import, which
    keeps the other core idle."""

    def __init__(self, path):
        from keras_sep.separation import saved_plan

        self.path = path
        self._digests = None
        try:
            self.expected = saved_plan.read_config(path).get("files")
        except ValueError:
            self.expected = None
        self._thread = threading.Thread(target=self._hash, name="keras_sep plan check", daemon=True)
        self._thread.start()

    def _hash(self):
        from keras_sep.separation import saved_plan

        try:
            self._digests = saved_plan.file_digests(self.path)
        except OSError:
            self._digests = None

    def result(self):
        """The entry's folder once checked, or None (then it is removed)."""
        self._thread.join()
        if self.expected and self._digests == self.expected:
            return self.path
        logger.warning("%s: stale or corrupt saved plan in the cache; it is made again", self.path)
        _cache.remove_tree(self.path)
        return None


def cached_folder(args):
    """The cache folder of the saved plan that serves ``args`` (a ``separate``
    command's), unchecked, or None: none cached, none served, cache off."""
    if not enabled() or (options := served_options(args)) is None:
        return None
    entry_key = key(args.model, options)
    if entry_key is None:
        return None
    path = folder(entry_key)
    return path if os.path.isdir(path) else None


def _gpu():
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def load(found, args):
    """The :class:`~keras_sep.separation.saved_plan.SavedPlanSeparator` of a
    :class:`Lookup`, with TensorFlow started without Keras; None where the
    check failed, a GPU is present or the plan does not load (then the
    command loads the Keras model as usual)."""
    from keras_sep import _cli_process

    _cli_process.start_tensorflow(args.verbose, keras=False)
    path = found.result()
    if path is None or _gpu():
        return None
    import tensorflow as tf

    from keras_sep.separation.saved_plan import SavedPlanSeparator

    try:
        separator = SavedPlanSeparator(path, chunking=args.chunking)
    except (OSError, ValueError, tf.errors.OpError) as error:
        from keras_sep.audio import one_line

        logger.warning("%s: the saved plan does not load (%s); it is made again", path, one_line(error))
        _cache.remove_tree(path)
        return None
    logger.debug("running the saved plan %s", path)
    with contextlib.suppress(OSError):  # used: not pruned as unused (prune)
        os.utime(path)
    return separator


def store(model, separator, options):
    """Save ``separator``'s (a :class:`~keras_sep.Separator` of ``model``)
    chunk computation for ``options`` in the cache, where it is not there
    yet and the machine's timings are complete; its folder, or None. A
    failure is logged, never raised: the separation it follows is done."""
    from keras_sep.inference import autotune

    if not enabled() or not hasattr(separator.model, "spectrogram_model"):
        return None
    if autotune.deferred() or _gpu():  # forms left to later runs; a GPU runs the Keras model
        return None
    fields = key_fields(model, options)
    if fields is None:
        return None
    entry_key = _digest(fields)
    path = folder(entry_key)
    if os.path.isdir(path):
        return path
    from keras_sep import export

    logger.info("saving the traced separation plan for later runs (once per model and machine): %s", path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    source = {"model": os.fspath(model), "key": entry_key, "fields": fields}
    try:
        _cache.replace_folder(path, lambda partial: export.export_plan(separator, partial, source=source))
        prune(path, fields)
        return path
    except Exception as error:  # a full disk, a plan TensorFlow cannot save: the next run loads the model again
        from keras_sep.audio import one_line

        logger.warning("no saved plan for %s: %s", model, one_line(error))
        return None
