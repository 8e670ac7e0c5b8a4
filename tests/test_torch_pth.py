"""The PyTorch-free .pth reader: both formats, and what it refuses.

The fixtures are real ``torch.save`` files (scripts/make_openunmix_fixtures.py);
each weight lies on a grid of 1/256, which the test uses as an independent
check of the values read.
"""
import glob
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from keras_sep.checkpoints.torch_pth import read_state_dict

DATA = os.path.join(os.path.dirname(__file__), "data", "openunmix")
TARGETS = ("vocals", "drums", "bass", "other")


def _file(fmt, target):
    (path,) = glob.glob(os.path.join(DATA, fmt, f"{target}-*.pth"))
    return path


@pytest.mark.parametrize("target", TARGETS)
def test_zip_and_legacy_formats_read_the_same(target):
    assert zipfile.is_zipfile(_file("zip", target))
    assert not zipfile.is_zipfile(_file("legacy", target))
    new = read_state_dict(_file("zip", target))
    old = read_state_dict(_file("legacy", target))
    assert list(new) == list(old)  # the state dict's order, too
    for name in new:
        assert new[name].dtype == old[name].dtype and new[name].shape == old[name].shape, name
        np.testing.assert_array_equal(new[name], old[name], err_msg=name)


def test_values_shapes_and_dtypes():
    state = read_state_dict(_file("zip", "vocals"))
    assert state["fc1.weight"].shape == (8, 2 * 1487) and state["fc1.weight"].dtype == np.float32
    assert state["fc3.weight"].shape == (2 * 2049, 8)
    assert state["lstm.weight_ih_l2_reverse"].shape == (16, 8)
    assert state["bn1.num_batches_tracked"].dtype == np.int64 and state["bn1.num_batches_tracked"].shape == ()
    floats = [v for v in state.values() if v.dtype == np.float32]
    # On the fixture's 1/256 grid, and not all zeros: real values, not garbage.
    for value in floats:
        np.testing.assert_array_equal(value * 256, np.round(value * 256))
    assert np.all(state["bn3.running_var"] >= 0.5)
    assert len({float(np.abs(v).sum()) for v in floats}) > 10


def _legacy_bytes(payload):
    """A legacy-format stream whose object pickle is ``payload``."""
    out = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump({"little_endian": True}, out, protocol=2)
    out.write(payload)
    pickle.dump([], out, protocol=2)
    return out.getvalue()


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_code_in_the_pickle_is_refused_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    legacy = tmp_path / "evil.pth"
    legacy.write_bytes(_legacy_bytes(pickle.dumps({"w": _Exploit()}, protocol=2)))
    with pytest.raises(ValueError, match=r"evil\.pth: .*refusing to load (posix|nt)\.system"):
        read_state_dict(legacy)
    zipped = tmp_path / "evil_zip.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": _Exploit()}, protocol=2))
    with pytest.raises(ValueError, match=r"evil_zip\.pth: .*refusing to load"):
        read_state_dict(zipped)
    assert not (tmp_path / "pwned.txt").exists()


def test_magic_number_pickle_cannot_run_code_either(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Exploit(), protocol=2))
    with pytest.raises(ValueError, match="refusing to load"):
        read_state_dict(path)
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "zip_without_pickle", "zip_missing_storage"])
def test_corrupt_files_give_one_line_errors_naming_the_file(tmp_path, damage):
    good = open(_file("legacy", "bass"), "rb").read()
    path = tmp_path / f"{damage}.pth"
    if damage == "truncate":
        path.write_bytes(good[: len(good) - 1000])
    elif damage == "garbage":
        path.write_bytes(b"\x00\x01not a pytorch file" * 50)
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "zip_without_pickle":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("model/weights.bin", b"1234")
    else:
        with zipfile.ZipFile(_file("zip", "bass")) as source, zipfile.ZipFile(path, "w") as archive:
            for name in source.namelist():
                if not name.endswith("/data/3"):
                    archive.writestr(name, source.read(name))
    with pytest.raises(ValueError) as info:
        read_state_dict(path)
    message = str(info.value)
    assert message.startswith(f"{path}: cannot read a PyTorch state dict (") and "\n" not in message


def test_a_missing_file():
    with pytest.raises(ValueError, match="nothere.pth: .*no such file"):
        read_state_dict("nothere.pth")


def test_a_pickle_that_is_no_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    path.write_bytes(_legacy_bytes(pickle.dumps([1, 2, 3], protocol=2)))
    with pytest.raises(ValueError, match="holds a list, not a state dict"):
        read_state_dict(path)
