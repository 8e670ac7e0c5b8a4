"""Seeded random values for every variable of a Spleeter checkpoint (NumPy only).

The 4- and 5-stem parity fixtures (scripts/make_spleeter45_fixtures.py) give
Spleeter's own graph these values; the tests regenerate the same values from
the fixture's variable list and seed, so that the 160–200 MB checkpoints need
not be committed. NumPy's ``Generator`` streams are stable across versions,
and the fixture keeps a fingerprint of the values to prove it.
"""
import numpy as np


def _values(rng, name, shape):
    leaf = name.rsplit("/", 1)[-1]
    if leaf in ("gamma", "moving_variance"):
        return rng.uniform(0.5, 1.5, shape)
    if leaf in ("beta", "moving_mean", "bias"):
        return rng.uniform(-0.1, 0.1, shape)
    if leaf == "kernel":
        # He-uniform scale on the input channels (the last axis of a
        # transposed convolution's kernel), so activations stay of order one.
        inputs = shape[-1] if "conv2d_transpose" in name else shape[2]
        limit = np.sqrt(6.0 / (shape[0] * shape[1] * inputs))
        return rng.uniform(-limit, limit, shape)
    raise ValueError(f"unexpected Spleeter variable {name!r}")


def random_variables(shapes, seed):
    """``{name: float32 array}`` for ``shapes`` (``{name: shape}``, model
    variables only), drawn in sorted name order from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return {name: _values(rng, name, tuple(shapes[name])).astype(np.float32) for name in sorted(shapes)}


def fingerprint(variables):
    """A float that changes if any value does (checks the NumPy stream)."""
    return float(sum(np.float64(v.ravel()[:: 997].sum()) for _, v in sorted(variables.items())))
