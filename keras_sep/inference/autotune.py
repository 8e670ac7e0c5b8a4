"""Pick the fastest of several equivalent computations by timing them here.

Which TensorFlow operator form of a layer is fastest depends on the
processor and the oneDNN build: on two AVX2 cores the phase form of a
strided transposed convolution ran the Spleeter decoder up to 3× faster
than oneDNN's own kernel, on an AVX-512 Xeon the own kernel was up to 1.4×
faster than the phase form. :func:`choose` times the candidates of one
layer on this machine once and remembers the winner in the cache
(``$KERAS_SEP_CACHE/tuning/``, one JSON file per machine and TensorFlow
version), so later runs start with the answer.

``KERAS_SEP_TUNE=0`` turns the timing off: every layer then takes the
caller's default form.

Timing every layer of the Spleeter U-Nets takes 15-20 s on two cores, and
gains 10-15 % of the network's time: a first run would pay more than it
saves. So one process times for at most :data:`BUDGET_SECONDS`
(``KERAS_SEP_TUNE_BUDGET`` overrides it); the layers left over keep their
default forms for that run and are timed by later runs, a few seconds
each, or all at once inside :func:`unlimited` (``keras-sep tune``).
"""
import contextlib
import hashlib
import json
import logging
import os
import platform
import time

import numpy as np
import tensorflow as tf

from keras_sep._cache import cache_dir, switched_on, write_atomically

logger = logging.getLogger(__name__)

# A candidate must beat the default by this factor to replace it: layer
# timings wobble by a few per cent on a shared machine.
MARGIN = 0.97

# Seconds of timing one process spends at most (see the module's docstring).
BUDGET_SECONDS = 3.0


class _Budget:
    """The timing one process has spent, against its limit (None: the
    environment's or :data:`BUDGET_SECONDS`; inf: no limit)."""

    def __init__(self, limit=None, clock=time.perf_counter):
        self.limit, self.clock = limit, clock
        self.spent, self.timed, self.deferred, self.announced = 0.0, 0, 0, False

    def seconds(self):
        if self.limit is not None:
            return self.limit
        value = os.environ.get("KERAS_SEP_TUNE_BUDGET")
        if value is None:
            return BUDGET_SECONDS
        try:
            return max(0.0, float(value))
        except ValueError:
            raise ValueError(f"KERAS_SEP_TUNE_BUDGET must be seconds (a number or inf), got {value!r}") from None

    def left(self):
        return self.seconds() - self.spent


_budget = _Budget()


@contextlib.contextmanager
def unlimited():
    """Time every layer that is not cached yet, however long it takes (what
    ``keras-sep tune`` does); the process's budget is as before afterwards."""
    global _budget
    saved = _budget
    _budget = _Budget(limit=float("inf"), clock=saved.clock)
    try:
        yield
    finally:
        _budget = saved


def deferred():
    """How many timings this process left to later runs (its budget was spent)."""
    return _budget.deferred


def enabled():
    """False when ``KERAS_SEP_TUNE`` is ``0``, ``false``, ``no`` or ``off``."""
    return switched_on("KERAS_SEP_TUNE")


def machine_key():
    """What the timings depend on: processor, usable cores, TensorFlow
    version and build, its CPU allocator, accelerators."""
    cpu = _cpuinfo("model name") or platform.processor() or platform.machine()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    return {
        "cpu": cpu,
        "cores": cores,
        "tensorflow": tf.__version__,
        "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        "cpu_allocator_bfc": os.environ.get("TF_CPU_ALLOCATOR_USE_BFC", "default"),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "gpus": gpus,
    }


def _cpuinfo(*fields):
    """The value of the first ``/proc/cpuinfo`` line naming one of
    ``fields`` (Linux), or ``None``."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith(fields):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags():
    """The processor's feature flags from ``/proc/cpuinfo`` (x86 "flags",
    Arm "Features"), or ``None`` where they cannot be read."""
    flags = _cpuinfo("flags", "Features")
    return None if flags is None else set(flags.split())


def has_bfloat16_units():
    """Whether bfloat16 convolutions can run faster than float32 here: a GPU,
    or a processor with bfloat16 instructions (AVX512_BF16, AMX-BF16, Arm's
    BF16). ``None`` when the processor's flags cannot be read."""
    if tf.config.list_logical_devices("GPU"):
        return True
    flags = cpu_flags()
    if flags is None:
        return None
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def table_path():
    key = json.dumps(machine_key(), sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), "tuning", f"{digest}.json")


def _load(path):
    try:
        with open(path) as f:
            table = json.load(f)
    except (OSError, ValueError):
        return {}
    return table.get("choices", {}) if isinstance(table, dict) else {}


def _store(path, choices):
    """Write atomically: another process may be reading or writing too."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    merged = {**_load(path), **choices}
    write_atomically(path, json.dumps({"machine": machine_key(), "choices": merged}, indent=1, sort_keys=True).encode())


def time_candidates(candidates, inputs, rounds=5, compiled=False):
    """Median milliseconds of each ``candidates[name](*inputs)``.

    Each candidate is traced and run once untimed; then the candidates run
    in interleaved rounds, so a slow spell of the machine hits them all.
    ``compiled``: call the candidates as they are instead of as one
    ``tf.function`` each (for candidates that are several calls: traced
    together, TensorFlow could run their independent parts in parallel).

    Example:

    >>> import tensorflow as tf
    >>> x = tf.ones((64, 64))
    >>> candidates = {"matmul": lambda x: x @ x, "einsum": lambda x: tf.einsum("ij,jk->ik", x, x)}
    >>> timings = time_candidates(candidates, (x,), rounds=3)
    >>> sorted(timings), all(ms > 0 for ms in timings.values())
    (['einsum', 'matmul'], True)
    """
    if compiled:
        functions = dict(candidates)
    else:
        functions = {name: tf.function(fn, autograph=False) for name, fn in candidates.items()}
    # Tracing one new function per candidate is the point here: TensorFlow's
    # warning about functions traced in a loop would only alarm the user.
    tf_logger = tf.get_logger()
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        for fn in functions.values():
            tf.nest.map_structure(np.asarray, fn(*inputs))
    finally:
        tf_logger.setLevel(level)
    times = {name: [] for name in functions}
    for _ in range(rounds):
        for name, fn in functions.items():
            start = time.perf_counter()
            tf.nest.map_structure(np.asarray, fn(*inputs))
            times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def choose(signature, candidates, inputs, default, table=None, rounds=5, compiled=False, note=None):
    """Name of the fastest candidate for ``signature`` on this machine.

    Args:
        signature: a string naming the computation and its shapes; the
            cache key (together with :func:`machine_key`).
        candidates: ``{name: function}``, all computing the same result.
        inputs: a tuple of tensors to time them on, or a function returning
            it (called only when timing is needed).
        default: the name to use when timing is off, and to keep unless
            another candidate is clearly faster.
        table: a dict to record new timings in instead of writing the cache
            at once (see :func:`save`); looked up before the cache.
        rounds, compiled: as for :func:`time_candidates`.
        note: logged at info level when the timing runs, for timings long
            enough to be noticed.

    Returns:
        a key of ``candidates``.

    Example:

    Timing on (the test suite turns it off), with the cache in a temporary
    folder and the timings kept in ``table``: one product beats twenty
(each scaled differently, so that none is computed once for all).

    >>> import os
    >>> import tempfile
    >>> from unittest import mock
    >>> import tensorflow as tf
    >>> x = tf.ones((256, 256))
    >>> candidates = {
    ...     "once": lambda x: x @ x,
    ...     "twenty_times": lambda x: tf.add_n([(x * k) @ x for k in range(1, 21)]) / 210,
    ... }
    >>> table = {}
    >>> with tempfile.TemporaryDirectory() as cache, mock.patch.dict(
    ...         os.environ, {"KERAS_SEP_TUNE": "1", "KERAS_SEP_CACHE": cache}):
    ...     choose("doctest square", candidates, (x,), "twenty_times", table=table, rounds=3)
    'once'
    >>> table["doctest square"]["choice"], sorted(table["doctest square"]["ms"])
    ('once', ['once', 'twenty_times'])
    >>> with mock.patch.dict(os.environ, {"KERAS_SEP_TUNE": "0"}):
    ...     choose("doctest square", candidates, (x,), "twenty_times")
    'twenty_times'
    """
    if default not in candidates:
        raise ValueError(f"default {default!r} is not among the candidates {sorted(candidates)}")
    if len(candidates) == 1 or not enabled():
        return default
    known = (table or {}).get(signature) or _load(table_path()).get(signature)
    if known and known.get("choice") in candidates and set(known.get("ms", {})) >= set(candidates):
        return known["choice"]
    budget = _budget
    if budget.left() <= 0:
        if not budget.deferred:
            logger.info(
                "timed this machine's operator forms for %.1f s (the budget of one run): the rest keep their "
                "defaults in this run and are timed by later runs, or all at once by `keras-sep tune`",
                budget.spent,
            )
        budget.deferred += 1
        logger.debug("%s: not timed in this run; default %r", signature, default)
        return default
    if note:
        logger.info(note)
    elif not budget.announced:
        limit = budget.seconds()
        logger.info(
            "timing this machine's operator forms%s (once; cached in %s)",
            "" if limit == float("inf") else f" for at most {limit:.1f} s in this run", table_path(),
        )
    budget.announced = True
    start = budget.clock()
    timings = time_candidates(candidates, inputs() if callable(inputs) else inputs, rounds=rounds, compiled=compiled)
    elapsed = budget.clock() - start
    budget.spent += elapsed
    budget.timed += 1
    logger.debug("%s: timed %d candidates in %.2f s: %s", signature, len(timings), elapsed,
                 ", ".join(f"{name} {ms:.1f} ms" for name, ms in sorted(timings.items())))
    best = min(timings, key=timings.get)
    choice = best if timings[best] < MARGIN * timings[default] else default
    entry = {"choice": choice, "ms": {name: round(ms, 3) for name, ms in timings.items()}}
    if table is None:
        _store(table_path(), {signature: entry})
    else:
        table[signature] = entry
    return choice


def clear():
    """Forget this machine's timings (the next plans time again); returns
    whether there were any."""
    path = table_path()
    if not os.path.exists(path):
        return False
    os.remove(path)
    return True


def save(table):
    """Write the timings gathered in ``table`` by :func:`choose` to the cache."""
    if table and enabled():
        _store(table_path(), table)
