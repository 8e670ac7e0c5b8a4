"""Remembering that an inference plan passed its probe check.

Making a plan ends with a check: the plan and the Keras model run on a
small random probe and must agree (:class:`~keras_sep.inference.plan.UNetInference`).
For the Spleeter U-Nets that check is 1.4 s of the 1.7 s of CPU the plan
takes to make, a fifth of a fresh ``keras-sep separate`` process of a
short clip, and its answer only depends on what the key below holds: the
model's configuration and weights, the plan's forms and options, the
code that computes the plan (and the versions of keras_sep and Keras, for
the layers it is compared with), and the machine (processor, TensorFlow).
So a passed check is recorded in the cache (``$KERAS_SEP_CACHE/probes/``,
one small file per key) and a later process with the same key skips it.
An entry that cannot be read, or does not hold its own key, is removed and
the check runs again; a failed check is never recorded. As the machine
timings, records are kept only while timing is on (``KERAS_SEP_TUNE``).
"""
import hashlib
import json
import logging
import os
import sys

import numpy as np

from keras_sep._cache import cache_dir, write_atomically
from keras_sep.inference import autotune

logger = logging.getLogger(__name__)

# The modules whose code decides what a plan computes.
_PLAN_MODULES = ("architecture", "forms", "kernels", "plan", "steps")


def _code_digest(modules):
    digest = hashlib.sha256()
    for name in modules:
        module = sys.modules.get(f"keras_sep.inference.{name}")
        path = getattr(module, "__file__", None) or os.path.join(os.path.dirname(__file__), f"{name}.py")
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def key(model, code=_PLAN_MODULES, **options):
    """The sha256 naming a probe check of a plan of ``model`` (a Keras model,
    or anything with ``get_config()`` and ``weights``) made with ``options``
    (forms, dtype, ...: anything JSON can write) by the modules ``code`` of
    :mod:`keras_sep.inference`.

    Example:

    >>> from keras_sep.models import UNetSeparator
    >>> net = UNetSeparator(filters=(4, 8), bins=16, frames=16)
    >>> a = key(net, forms={"decoder": ["merged", "head"]}, dtype="float32")
    >>> len(a), a == key(net, forms={"decoder": ["merged", "head"]}, dtype="float32")
    (64, True)
    >>> a == key(net, forms={"decoder": ["merged", "head"]}, dtype="bfloat16")
    False
    >>> net.weights[0].assign(net.weights[0] + 1.0) is not None
    True
    >>> a == key(net, forms={"decoder": ["merged", "head"]}, dtype="float32")
    False
    """
    digest = hashlib.sha256()
    import keras

    import keras_sep

    # The Keras layers the plan is compared with are code too: their
    # package versions stand for them.
    versions = {"keras_sep": keras_sep.__version__, "keras": keras.__version__}
    config = {"model": model.get_config(), "options": options, "machine": autotune.machine_key(),
              "code": _code_digest(code), "versions": versions}
    digest.update(json.dumps(config, sort_keys=True, default=repr).encode())
    for weight in model.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(f"{weight.path}:{value.dtype}:{value.shape}".encode())
        digest.update(value.data)
    return digest.hexdigest()


def relative_error(reference, got):
    """The largest absolute difference of ``got`` from ``reference`` over
    the largest magnitude of ``reference`` (float64; a silent reference
    counts as float32's smallest normal): what a probe check compares.

    >>> relative_error(np.array([2.0, -4.0]), np.array([2.0, -3.9]))
    0.025...
    """
    reference = np.asarray(reference, np.float64)
    scale = max(float(np.abs(reference).max()), np.finfo(np.float32).tiny)
    return float(np.abs(np.asarray(got, np.float64) - reference).max()) / scale


def _path(probe_key):
    return os.path.join(cache_dir(), "probes", f"{probe_key[:32]}.json")


def passed(probe_key):
    """Whether a check with ``probe_key`` passed before (and timing is on)."""
    if not autotune.enabled():
        return False
    path = _path(probe_key)
    if not os.path.exists(path):
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            record = json.load(handle)
        if isinstance(record, dict) and record.get("key") == probe_key and record.get("passed") is True:
            return True
    except (OSError, ValueError):
        pass
    logger.warning("%s: stale or corrupt probe record in the cache; the plan is checked again", path)
    try:
        os.remove(path)
    except OSError:
        pass
    return False


def remember(probe_key, error):
    """Record that the check with ``probe_key`` passed with relative ``error``
    (atomically: another process may be reading or writing it too)."""
    if not autotune.enabled():
        return
    path = _path(probe_key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    write_atomically(path, json.dumps({"key": probe_key, "passed": True, "error": error}).encode())
