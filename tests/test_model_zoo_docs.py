"""Every docstring example of every public layer, model, op, inference and
separation module, and of the losses, runs as written.

The modules are discovered, not listed, so that a new module without an
example, or with one that uses a name it never imports, fails here.
"""
import doctest
import importlib
import pkgutil

import pytest

PACKAGES = (
    "keras_sep.layers",
    "keras_sep.models",
    "keras_sep.ops",
    "keras_sep.inference",
    "keras_sep.separation",
)
MODULES = ("keras_sep.losses",)
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

def public_modules():
    names = []
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        names += [f"{package}.{m.name}" for m in pkgutil.iter_modules(path)
                  if not m.name.startswith("_")]
    return sorted(names) + list(MODULES)


def test_discovery_finds_every_package():
    names = public_modules()
    for expected in (
        "keras_sep.layers.stft",
        "keras_sep.models.waveform_separator",
        "keras_sep.ops.wiener",
        "keras_sep.inference.plan",
        "keras_sep.separation.separator",
        "keras_sep.losses",
    ):
        assert expected in names
    assert not [n for n in names if n.rsplit(".", 1)[1].startswith("_")]


@pytest.mark.parametrize("name", public_modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=OPTIONS, verbose=False)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
