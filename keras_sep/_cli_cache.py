"""``keras-sep cache``: what keras_sep keeps in its cache folder, and clearing it.

The cache (``$KERAS_SEP_CACHE``, else ``$XDG_CACHE_HOME/keras_sep`` or
``~/.cache/keras_sep``) holds, by category:

* weights: one folder per preset (``spleeter_2stems/``, ``umxhq/``: the
  downloaded ``files/``, Spleeter's converted ``model.keras`` and
  ``model.json``) and the ``asset_*`` downloads;
* datasets: the generated ``bach_chorales/`` datasets and ``ddsp_features/``;
* litert: ``litert/KEY/``, LiteRT exports of a model's weights;
* plans: ``plans/KEY/``, saved TensorFlow separation plans;
* probes: ``probes/``, the records of passed inference-plan checks;
* tuning: ``tuning/``, the operator timings of each machine;
* xla: ``xla/KEY/``, compiled XLA code per machine key (``key.json`` there);
  ``stale`` names those of keys other than this machine's current one.

Everything except the weights and datasets is made again when needed, in
seconds. This module reads only the folder (no TensorFlow, nothing of the
modules that write the entries), so the command answers at once.
"""
import argparse
import collections
import contextlib
import datetime
import json
import os

from keras_sep import _cli_xla_store
from keras_sep._cache import TRASH_PREFIX, cache_dir, remove_tree

CATEGORIES = ("weights", "datasets", "litert", "plans", "probes", "tuning", "xla")
# Downloads (80+ MB per Spleeter preset) and datasets that take minutes to make:
# cleared only when named or with --all.
KEPT = ("weights", "datasets")
STALE = "stale"
# The folders of one entry per subfolder, and the category of each.
_PER_SUBFOLDER = {"bach_chorales": "datasets", "litert": "litert", "plans": "plans", "xla": "xla"}
# Folders that are one entry as a whole.
_WHOLE = {"ddsp_features": "datasets", "probes": "probes", "tuning": "tuning"}
_WEIGHT_FILES = ("model.keras", "model.json", "files")

Entry = collections.namedtuple("Entry", "category name path size note current")


def size_of(path):
    """Bytes of the file ``path``, or of the files under the folder ``path`` (links not followed)."""
    if not os.path.isdir(path) or os.path.islink(path):
        with contextlib.suppress(OSError):
            return os.lstat(path).st_size
        return 0
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def human(size):
    """``size`` bytes for people: ``512 B``, ``1.5 KiB``, ``80.3 MiB``."""
    if size < 1024:
        return f"{size} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        size /= 1024
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}"


def _xla_note(path, current):
    """``this machine`` or ``stale``, what the key is (key.json), and when it was last used."""
    try:
        with open(os.path.join(path, "key.json"), encoding="utf-8") as handle:
            key = json.load(handle)
        parts = [f"tensorflow {key.get('tensorflow')}", str(key.get("cpu")), f"{key.get('cores')} cores"]
        for field, variable in (("xla_flags", "XLA_FLAGS"), ("tf_xla_flags", "TF_XLA_FLAGS")):
            if key.get(field):
                parts.append(f"{variable}={key[field]}")
        if key.get("onednn", "default") != "default":
            parts.append(f"TF_ENABLE_ONEDNN_OPTS={key['onednn']}")
        summary = ", ".join(parts)
    except (OSError, ValueError, AttributeError):
        summary = "no readable key.json"
    try:
        used = datetime.date.fromtimestamp(os.stat(path).st_mtime).isoformat()
    except OSError:  # removed meanwhile
        used = "?"
    return f"{'this machine' if current else 'stale'} ({summary}), last used {used}"


def _listdir(path):
    """The names in folder ``path``, sorted, without hidden ones (what a removal is leaving)."""
    try:
        return sorted(name for name in os.listdir(path) if not name.startswith("."))
    except OSError:  # not a folder, or removed meanwhile
        return []


def entries(root=None):
    """The cache's entries (:class:`Entry`), by category in :data:`CATEGORIES`'
    order, then anything else as category ``other`` (never removed)."""
    root = cache_dir() if root is None else root
    this_key = _cli_xla_store.key_name()
    found = []
    for name in _listdir(root):
        path = os.path.join(root, name)
        if name in _PER_SUBFOLDER and os.path.isdir(path):
            category = _PER_SUBFOLDER[name]
            for sub in _listdir(path):
                inner = os.path.join(path, sub)
                current = category == "xla" and sub == this_key
                note = _xla_note(inner, current) if category == "xla" and os.path.isdir(inner) else ""
                found.append(Entry(category, f"{name}/{sub}", inner, size_of(inner), note, current))
        elif name in _WHOLE and os.path.isdir(path):
            count = len(_listdir(path))
            found.append(Entry(_WHOLE[name], f"{name}/", path, size_of(path),
                               f"{count} file{'' if count == 1 else 's'}", False))
        elif os.path.isdir(path) and (name.startswith("asset_") or any(
                os.path.exists(os.path.join(path, inner)) for inner in _WEIGHT_FILES)):
            found.append(Entry("weights", f"{name}/", path, size_of(path), "", False))
        else:
            found.append(Entry("other", name, path, size_of(path), "not keras_sep's: never removed", False))
    order = {category: rank for rank, category in enumerate(CATEGORIES)}
    return sorted(found, key=lambda e: order.get(e.category, len(order)))


def table(root=None):
    """The lines of ``keras-sep cache list``: each category's size and entries, and the total."""
    root = cache_dir() if root is None else root
    found = entries(root)
    lines = [f"keras_sep cache: {root}"]
    categories = CATEGORIES + (("other",) if any(e.category == "other" for e in found) else ())
    width = max([len(e.name) + 2 for e in found] + [len(c) for c in categories])
    for category in categories:
        mine = [e for e in found if e.category == category]
        lines.append(f"{category:<{width}}  {human(sum(e.size for e in mine)):>10}")
        lines += [f"  {e.name:<{width - 2}}  {human(e.size):>10}  {e.note}".rstrip() for e in mine]
    lines.append(f"{'total':<{width}}  {human(sum(e.size for e in found)):>10}")
    return lines


def _remove(entry):
    if os.path.isdir(entry.path) and not os.path.islink(entry.path):
        return remove_tree(entry.path)
    try:
        os.remove(entry.path)
    except FileNotFoundError:
        return False
    return True


def clear(categories, root=None, dry_run=False):
    """Remove the entries of ``categories`` (names in :data:`CATEGORIES`, or
    :data:`STALE`); each folder is renamed away first, so a process using
    the cache at the same time finds an entry whole or not at all, and an
    XLA folder a running process works in is kept. The removed entries
    (with ``dry_run``, those that would be removed) and ``(entry, why)`` of
    those kept."""
    root = cache_dir() if root is None else root
    unknown = [name for name in categories if name not in CATEGORIES + (STALE,)]
    if unknown:
        raise ValueError(f"unknown cache category {unknown[0]!r}; known: {', '.join(CATEGORIES + (STALE,))}")
    removed, kept = [], []
    for entry in entries(root):
        stale = entry.category == "xla" and not entry.current and STALE in categories
        if entry.category not in categories and not stale:
            continue
        try:
            if entry.category == "xla" and os.path.isdir(entry.path) and _cli_xla_store.in_use(entry.path):
                kept.append((entry, "a running process uses it"))
            elif dry_run or _remove(entry):
                removed.append(entry)
        except OSError as error:  # e.g. a shared cache's entry of another user's
            kept.append((entry, error.strerror or str(error)))
    if not dry_run:  # what interrupted removals left
        for folder in [root] + [os.path.join(root, name) for name in _PER_SUBFOLDER]:
            for name in os.listdir(folder) if os.path.isdir(folder) else ():
                if name.startswith(TRASH_PREFIX):
                    remove_tree(os.path.join(folder, name))
    return removed, kept


def add_parser(commands, parents):
    """The ``cache`` command (its function is ``run``)."""
    parser = commands.add_parser(
        "cache", parents=parents, help="list or clear what keras_sep keeps in its cache folder",
        description="List (default) or clear keras_sep's cache folder: $KERAS_SEP_CACHE, else "
        "$XDG_CACHE_HOME/keras_sep or ~/.cache/keras_sep.",
    )
    actions = parser.add_subparsers(dest="action")
    actions.add_parser("list", parents=parents, help="each category's entries and sizes (the default)")
    clear_parser = actions.add_parser(
        "clear", parents=parents, help="remove categories of the cache",
        description="Remove the named categories; without a name everything that is made again when needed "
        f"({', '.join(c for c in CATEGORIES if c not in KEPT)}). Downloaded weights (80+ MB per Spleeter "
        "preset) and generated datasets are removed only when named or with --all.",
    )
    clear_parser.add_argument(
        "categories", nargs="*", metavar="CATEGORY",
        help=f"{', '.join(CATEGORIES)}, or {STALE}: the XLA code of other machine keys (TensorFlow, processor "
        "or XLA settings this machine no longer has)",
    )
    clear_parser.add_argument("--all", action="store_true", help="every category, weights and datasets too")
    clear_parser.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    parser.set_defaults(categories=(), all=False, dry_run=False)
    return parser


def run(args, logger):
    """``keras-sep cache [list | clear ...]``; the exit status."""
    if getattr(args, "action", None) != "clear":
        print("\n".join(table()))
        return 0
    categories = tuple(args.categories) or tuple(c for c in CATEGORIES if c not in KEPT)
    if args.all:
        categories += CATEGORIES
    try:
        removed, kept = clear(categories, dry_run=args.dry_run)
    except ValueError as error:
        logger.error("%s", error)
        return 2
    verb = "would remove" if args.dry_run else "removed"
    for entry in removed:
        print(f"{verb} {entry.category}: {entry.name} ({human(entry.size)})")
    for entry, why in kept:
        print(f"kept {entry.category}: {entry.name} ({why})")
    freed = human(sum(e.size for e in removed))
    print(f"{'would free' if args.dry_run else 'freed'} {freed} in {cache_dir()}" if removed else "nothing to remove")
    return 0
