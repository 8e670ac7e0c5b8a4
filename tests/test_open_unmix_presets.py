"""Open-Unmix presets: the recorded files, and loading from a local folder (no network)."""
import copy
import glob
import json
import logging
import os
import re
import shutil

import numpy as np
import pytest

from keras_sep import pretrained
from keras_sep.models import OpenUnmix, bandwidth_to_max_bin

DATA = os.path.join(os.path.dirname(__file__), "data")
TARGETS = ["vocals", "drums", "bass", "other"]
RECORDS = {"umxhq": "3370489", "umx": "3370486", "umxl": "5069601"}


@pytest.mark.parametrize("name, hidden", [("umxhq", 512), ("umx", 512), ("umxl", 1024)])
def test_presets_record_upstream_files(name, hidden):
    spec = pretrained.get_preset(name)
    assert spec["model"] == dict(nb_bins=2049, nb_channels=2, hidden_size=hidden, nb_layers=3,
                                 max_bin=bandwidth_to_max_bin(44100, 4096, 16000), unidirectional=False)
    checkpoint = spec["checkpoint"]
    assert list(checkpoint["targets"]) == TARGETS
    for target, file in checkpoint["targets"].items():
        match = re.fullmatch(rf"{target}-([0-9a-f]{{8}})\.pth", file)
        assert match and checkpoint["files"][file] == match.group(1)
        assert checkpoint["urls"][file] == f"https://zenodo.org/records/{RECORDS[name]}/files/{file}"
    assert ("notice" in spec) == (name == "umxl")
    assert spec["licence"] == ("CC BY-NC-SA 4.0" if name == "umxl" else "MIT")


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty cache, no weights folder, and downloads that fail at once."""
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_SEP_WEIGHTS_DIR", raising=False)
    attempts = []

    def no_network(url, names):
        attempts.append(url)
        raise OSError("offline")

    monkeypatch.setattr(pretrained, "_from_url", no_network)
    return attempts


def _fixture_files():
    return {t: glob.glob(os.path.join(DATA, "openunmix", "zip", f"{t}-*.pth"))[0] for t in TARGETS}


@pytest.fixture
def test_preset(monkeypatch, tmp_path):
    """umxhq's entry with the fixtures' file names and sizes, as "umxtest"."""
    table = pretrained.presets()
    spec = copy.deepcopy(table["umxhq"])
    names = {t: os.path.basename(p) for t, p in _fixture_files().items()}
    spec["model"]["hidden_size"] = 8
    spec["notice"] = "test weights, licence TEST-1.0"
    checkpoint = spec["checkpoint"]
    checkpoint["targets"] = names
    checkpoint["files"] = {n: n.split("-")[1][:8] for n in names.values()}
    checkpoint["urls"] = {n: f"https://example.invalid/{n}" for n in names.values()}
    table["umxtest"] = spec
    monkeypatch.setattr(pretrained, "presets", lambda: json.loads(json.dumps(table)))
    local = tmp_path / "weights"
    local.mkdir()
    for path in _fixture_files().values():
        shutil.copy(path, local)
    return local


def test_load_from_a_local_folder_reproduces_pytorch(offline, test_preset, caplog):
    with caplog.at_level(logging.WARNING, logger="keras_sep.pretrained"):
        models = pretrained.load_model("umxtest", local_dir=str(test_preset))
    assert list(models) == TARGETS and offline == []
    assert all(isinstance(m, OpenUnmix) and m.target == t for t, m in models.items())
    with np.load(os.path.join(DATA, "openunmix_random.npz")) as data:
        reference, x = data["net_output_vocals"], data["net_input"]
    estimate = models["vocals"](x, training=False).numpy()
    assert 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2)) > 60
    assert [r.getMessage() for r in caplog.records] == ["umxtest: test weights, licence TEST-1.0"]

    # Cached: the folder may go, and the licence is not repeated.
    shutil.rmtree(test_preset)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="keras_sep.pretrained"):
        again = pretrained.load_open_unmix("umxtest", targets=["bass"])
    assert list(again) == ["bass"] and offline == [] and caplog.records == []


def test_a_tampered_file_is_refused_and_not_cached(offline, test_preset):
    files = _fixture_files()
    # The drums weights under the vocals name: a valid .pth, the wrong sha256.
    shutil.copy(files["drums"], test_preset / os.path.basename(files["vocals"]))
    with pytest.raises(pretrained.PretrainedError, match=r"vocals-[0-9a-f]{8}\.pth'\] \(sha256 mismatch\)"):
        pretrained.load_model("umxtest", local_dir=str(test_preset))
    assert offline == [f"https://example.invalid/{os.path.basename(files['vocals'])}"]  # then the download
    assert not os.path.isdir(os.path.join(os.environ["KERAS_SEP_CACHE"], "umxtest", "files"))


def test_real_presets_check_their_files(offline, tmp_path):
    """Random weights under umxhq's names do not pass for umxhq's."""
    local = tmp_path / "fake_umxhq"
    local.mkdir()
    for target, path in _fixture_files().items():
        shutil.copy(path, local / pretrained.get_preset("umxhq")["checkpoint"]["targets"][target])
    with pytest.raises(pretrained.PretrainedError, match="sha256 mismatch"):
        pretrained.load_model("umxhq", local_dir=str(local))
    assert offline == ["https://zenodo.org/records/3370489/files/vocals-b62c91ce.pth"]


def test_files_of_other_sizes_than_the_preset_are_refused(offline, test_preset, monkeypatch):
    table = pretrained.presets()
    table["umxtest"]["model"]["hidden_size"] = 16
    monkeypatch.setattr(pretrained, "presets", lambda: json.loads(json.dumps(table)))
    with pytest.raises(ValueError, match="'hidden_size': 8.*the preset says.*'hidden_size': 16"):
        pretrained.load_open_unmix("umxtest", local_dir=str(test_preset))


def test_unknown_targets(offline, test_preset):
    with pytest.raises(ValueError, match=r"umxtest has no targets \['piano'\]"):
        pretrained.load_open_unmix("umxtest", local_dir=str(test_preset), targets=["vocals", "piano"])
