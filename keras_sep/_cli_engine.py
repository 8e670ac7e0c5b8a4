"""Which engine ``keras-sep separate`` runs: TensorFlow, or a LiteRT export.

A fresh process that separates a short clip spends most of its time
importing TensorFlow and preparing the network; the LiteRT runtime starts
in a fraction of a second but runs each chunk more slowly. ``--engine
auto`` takes LiteRT where that pays: the request is one it serves, the
runtime is installed, a LiteRT export of the model is at hand (given with
``-m``, or in the cache) and the inputs are short enough.
"""
import importlib.util
import logging
import os
import sys

logger = logging.getLogger("keras_sep.cli")

ENGINES = ("auto", "tensorflow", "litert")
# Up to this much audio in one run, a fresh process finishes sooner with
# LiteRT (benchmarks/engine_crossover.py; docs/performance.md): TensorFlow
# loading the Keras model, or starting from its saved plan (keras_sep._cli_plans).
AUTO_LITERT_SECONDS = 120.0
AUTO_LITERT_SECONDS_SAVED_PLAN = 75.0

def is_litert_export(model):
    """Whether ``model`` (the ``-m`` value) names a LiteRT export."""
    name = os.fspath(model)
    if name.endswith(".tflite"):
        return True
    return os.path.isdir(name) and os.path.isfile(os.path.join(name, "keras_sep.json"))


def unsupported(args):
    """Why the LiteRT runner cannot serve this request, or None."""
    if args.mwf:
        return "--mwf (two passes over the song)"
    if args.phase != "mixture":
        return f"--phase {args.phase}"
    if args.precision != "float32":
        return f"--precision {args.precision}"
    return None


def _seconds(paths, offset, duration):
    """Audio to separate in ``paths``, in seconds (files that cannot be read count 0)."""
    from keras_sep import audio

    total = 0.0
    for path in paths:
        try:
            rate, _, frames = audio.info(path)
        except audio.AudioError:
            continue  # reported when it is separated
        seconds = max(0.0, frames / rate - offset)
        total += seconds if duration is None else min(seconds, duration)
    return total


def choose(args, paths, saved_plan=False):
    """``"tensorflow"`` or ``"litert"`` for ``args.engine`` and the input files
    ``paths``, where ``saved_plan`` says whether TensorFlow would start from
    a saved plan; raises ValueError where ``--engine litert`` cannot serve
    the request (or TensorFlow cannot run a LiteRT export)."""
    export = is_litert_export(args.model)
    why = unsupported(args)
    if args.engine == "litert" or export:
        if why is not None:
            raise ValueError(f"--engine litert does not run {why}; use --engine tensorflow with a Keras model")
        if export and args.engine == "tensorflow":
            raise ValueError(f"{args.model}: a LiteRT export runs with --engine litert or auto, not tensorflow")
        return "litert"
    if args.engine == "tensorflow":
        return "tensorflow"
    if why is not None or args.plot or args.batch_size is not None:
        reason = why or ("--plot" if args.plot else "--batch-size")
    elif importlib.util.find_spec("ai_edge_litert") is None:
        reason = "ai-edge-litert is not installed"
    else:
        from keras_sep.litert import cache

        seconds = _seconds(paths, args.offset, args.duration)
        most = AUTO_LITERT_SECONDS_SAVED_PLAN if saved_plan else AUTO_LITERT_SECONDS
        if seconds > most:
            reason = f"{seconds:.0f} s of audio (LiteRT up to {most:.0f} s{', TensorFlow has a saved plan' * saved_plan})"
        elif (path := cache.cached_export(args.model)) is None:
            reason = "no LiteRT export of the model in the cache yet (made by keras-sep tune or --engine litert)"
        else:
            logger.debug("engine: litert (%.1f s of audio, cached export)", seconds)
            # Checking hashed the whole .tflite (0.1 s for Spleeter's 79 MB, 7 %
            # of a short LiteRT run): litert_separator() takes the checked
            # folder from this run's arguments instead of checking it again.
            args.checked_export = path
            return "litert"
    logger.debug("engine: tensorflow (%s)", reason)
    return "tensorflow"


def litert_separator(args, load):
    """The :class:`~keras_sep.litert.LiteRTSeparator` for ``args.model``: the
    export it names, or the cached export of its weights, made first with
    ``load()`` (which returns the Keras ``Separator`` or None) when there is
    none yet. None when loading failed (already reported)."""
    from keras_sep.litert import LiteRTSeparator, cache

    if is_litert_export(args.model):
        return _started(LiteRTSeparator, args.model, args.chunking)
    path = getattr(args, "checked_export", None) or cache.cached_export(args.model)
    if path is None:
        separator = load()
        if separator is None:
            return None
        from keras_sep import export

        path = _convert(args.model, separator)
        if path is None:  # weights without a key: convert for this run only
            import tempfile

            path = export.export_litert(separator, tempfile.mkdtemp(prefix="keras_sep_litert_"))
    return _started(LiteRTSeparator, path, args.chunking)


def _convert(model, separator):
    """Convert the loaded ``separator`` of ``model`` into the cache; its folder,
    or None where the weights have no key to file it under."""
    from keras_sep import export
    from keras_sep.litert import cache

    logger.info("converting %s to LiteRT once (kept in the cache for later runs)", model)
    return cache.store(model, lambda folder, source: export.export_litert(separator, folder, source=source))


def prepare_export(model, separator):
    """The cached LiteRT export of ``model`` that ``--engine auto`` runs short
    inputs with, made from the loaded ``separator`` (float32) where it is
    missing, stale or corrupt: what ``keras-sep tune`` prepares once per
    machine and model, so that the next ``separate`` starts without
    TensorFlow. None where it cannot be made (the runtime is not
    installed, the weights have no key, the network does not convert:
    logged)."""
    if importlib.util.find_spec("ai_edge_litert") is None:
        logger.info("no LiteRT export prepared: ai-edge-litert is not installed")
        return None
    from keras_sep.litert import cache

    path = cache.cached_export(model)
    if path is not None or cache.source_key(model) is None:
        return path
    try:
        return _convert(model, separator)
    except (OSError, ValueError) as error:
        from keras_sep.audio import one_line

        logger.warning("no LiteRT export prepared for %s: %s", model, one_line(error))
        return None


def _started(runner, path, chunking):
    """``runner(path, chunking=chunking)`` without the runtime's "Created
    TensorFlow Lite XNNPACK delegate" notice, which its C++ code prints to
    file descriptor 2 (no Python filter sees it) as the network is
    prepared: it goes to the debug log; anything else printed stays."""
    from keras_sep import runtime

    captured = []
    try:
        with runtime._stderr_captured() as captured:
            return runner(path, chunking=chunking)
    finally:
        for line in "".join(captured).splitlines(keepends=True):
            if "XNNPACK delegate" in line:
                logger.debug("LiteRT: %s", line.strip())
            else:
                sys.stderr.write(line)
        sys.stderr.flush()
