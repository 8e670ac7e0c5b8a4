"""The package's layout: no import circles, and imports only go downwards.

Every ``import`` in every module under ``keras_sep/`` counts, those inside
functions too (a lazy import is still a dependency); ``importlib``
calls with a constant name count as well. ``keras_sep/__init__.py`` is
exempt: its lazy attribute table names the top-level parts for users, it
is not a dependency of theirs.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_sep"

# The rank of each top-level part of keras_sep (a module or a package): a
# module imports from its own part and from parts of lower rank only. A new
# part gets a row here (the test names any part that has none).
RANKS = {
    "ops": 0,
    "audio": 0,
    "_cache": 0,
    "_backend": 0,
    "runtime": 0,
    "layers": 1,
    "losses": 1,
    "models": 2,
    "data": 2,
    "inference": 3,
    "pretrained": 3,
    "checkpoints": 3,
    "training": 4,
    "_distributed": 4,
    "separation": 4,
    "evaluation": 5,
    "export": 5,
    "litert": 5,
    "ddsp_export": 5,
    "plotting": 5,
    "recipes": 5,
    "beam": 5,
    "cli": 6,
    "_cli_process": 6,
    "_cli_engine": 6,
    "_cli_xla": 6,
    "_cli_xla_store": 6,
    "_cli_plans": 6,
    "_cli_cache": 6,
    "_cli_common": 6,
    "_cli_separate": 6,
    "_cli_commands": 6,
}

# Imports that break the rules today and are being fixed in other branches
# of the same change: (importing module, imported module). Each is allowed
# only while it exists; empty this set as they go.
KNOWN_VIOLATIONS = set()

EXEMPT = {"keras_sep"}  # keras_sep/__init__.py's lazy attribute table


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    """``{module name: (path, is package)}`` of every module under keras_sep/."""
    return {_module_name(p): (p, p.name == "__init__.py") for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name, path, is_package, known):
    """The keras_sep modules that module ``name`` imports, with line numbers."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            for alias in node.names:
                # `from keras_sep.x import y` imports module keras_sep.x.y when there is one.
                child = f"{source}.{alias.name}"
                found.append((child if child in known else source, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
    return [(target, line) for target, line in found if target == "keras_sep" or target.startswith("keras_sep.")]


def _resolve(target, known):
    """The module a dotted import name loads: itself, or the nearest known
    parent (``keras_sep.models.WaveformSeparator`` → ``keras_sep.models``)."""
    while target not in known:
        target = target.rpartition(".")[0]
    return target


def _graph():
    """``{module: {imported module: first line}}`` over keras_sep, without
    self-imports and the exempt modules' imports."""
    modules = _modules()
    graph = {}
    for name, (path, is_package) in modules.items():
        edges = graph.setdefault(name, {})
        if name in EXEMPT:
            continue
        for target, line in _imports(name, path, is_package, modules):
            target = _resolve(target, modules)
            # Importing any submodule runs keras_sep/__init__.py first: an
            # explicit `import keras_sep` adds no dependency to the order.
            if target not in (name, "keras_sep"):
                edges.setdefault(target, line)
    return graph


def _part(module):
    """The top-level part of keras_sep a module belongs to (``models`` for
    ``keras_sep.models.unet``)."""
    return module.split(".")[1]


def _cycles(graph):
    """The strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _without_known(graph):
    return {a: {b: line for b, line in edges.items() if (a, b) not in KNOWN_VIOLATIONS} for a, edges in graph.items()}


@pytest.fixture(scope="module")
def graph():
    return _graph()


def test_the_scan_sees_top_level_and_function_level_imports(graph):
    # Checks of the checker: a module-level import, a function-level one,
    # and a relative one in a package's __init__.
    assert "keras_sep.audio" in graph["keras_sep.separation.resampling"]
    assert "keras_sep.pretrained" in graph["keras_sep.separation.separator"]  # inside from_preset
    assert "keras_sep.separation.separator" in graph["keras_sep.separation"]
    assert graph["keras_sep"] == {}


def test_every_part_has_a_rank(graph):
    parts = {_part(m) for m in graph if m not in EXEMPT}
    assert parts - set(RANKS) == set(), "give the new part a rank in RANKS"


def test_no_import_circles_between_modules(graph):
    assert _cycles(_without_known(graph)) == []


def test_no_import_circles_between_parts(graph):
    # Parts of the same rank may import each other, but not both ways.
    parts = {}
    for module, edges in _without_known(graph).items():
        for target in edges:
            if _part(module) != _part(target):
                parts.setdefault(_part(module), set()).add(_part(target))
    assert _cycles(parts) == []


def test_imports_only_go_downwards(graph):
    upwards = []
    for module, edges in graph.items():
        for target, line in edges.items():
            if RANKS[_part(module)] < RANKS[_part(target)] and (module, target) not in KNOWN_VIOLATIONS:
                upwards.append(f"{module}:{line} (rank {RANKS[_part(module)]}) imports {target} (rank {RANKS[_part(target)]})")
    assert upwards == []


def test_known_violations_are_still_there(graph):
    # An entry whose import is gone must go too, so that it cannot hide a new one.
    assert {(a, b) for a, b in KNOWN_VIOLATIONS if b not in graph.get(a, {})} == set()


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}, "e": {"e": 1}}
    assert _cycles(graph) == [["a", "b", "c"]]
