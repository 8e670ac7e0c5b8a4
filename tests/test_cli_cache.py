"""``keras-sep cache`` lists and clears the cache folder; new XLA keys prune unused old ones."""
import datetime
import json
import os
import subprocess
import sys

import pytest

from keras_sep import _cli_cache, _cli_xla_store, cli

OLD_KEY = {"cores": 4, "cpu": "Old CPU", "machine": "x86_64", "onednn": "default", "tensorflow": "2.0.0",
           "tf_xla_flags": "", "xla_flags": "--foo"}
OLD_USE = datetime.datetime(2026, 1, 2, 12).timestamp()  # local noon: the same date in every time zone's listing


def write(path, size):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"x" * size)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache with one small entry of every kind; sizes in bytes as noted."""
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    write(tmp_path / "spleeter_2stems" / "model.keras", 3000)
    write(tmp_path / "spleeter_2stems" / "model.json", 100)  # weights: 3100
    write(tmp_path / "asset_audio_example" / "files" / "a.wav", 500)  # weights: 3600 = 3.5 KiB
    write(tmp_path / "bach_chorales" / "n3-s12-seed0-drums" / "mix.wav", 2048)  # datasets: 2.0 KiB
    write(tmp_path / "litert" / "abc" / "separator.tflite", 1000)
    write(tmp_path / "litert" / "abc" / "keras_sep.json", 24)  # litert: 1024 = 1.0 KiB
    write(tmp_path / "plans" / "def" / "keras_sep.json", 50)
    write(tmp_path / "plans" / "def" / "saved_model.pb", 950)  # plans: 1000
    write(tmp_path / "probes" / "a.json", 10)
    write(tmp_path / "probes" / "b.json", 20)  # probes: 30
    write(tmp_path / "tuning" / "t.json", 40)  # tuning: 40
    current = tmp_path / "xla" / _cli_xla_store.key_name()
    write(current / "x.pb", 200)
    (current / "key.json").write_text(json.dumps(_cli_xla_store.machine_key(), sort_keys=True))
    old = tmp_path / "xla" / "0000000000000000"
    write(old / "y.pb", 800)
    (old / "key.json").write_text(json.dumps(OLD_KEY))
    os.utime(old, (OLD_USE, OLD_USE))
    write(tmp_path / "notes.txt", 7)  # not keras_sep's
    return tmp_path


def run(capsys, *argv):
    code = cli.main(["cache", *argv])
    out, err = capsys.readouterr()
    return code, [" ".join(line.split()) for line in out.splitlines()], err


def present(root):
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, folders, files in os.walk(root) for name in folders + files)


def test_human_sizes():
    assert [_cli_cache.human(n) for n in (0, 1023, 1024, 1536, 5 << 20, 3 << 30)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "5.0 MiB", "3.0 GiB"]


def test_list_shows_each_category_its_entries_sizes_and_the_total(cache, capsys):
    code, lines, _ = run(capsys)
    assert code == 0
    assert lines[0] == f"keras_sep cache: {cache}"
    current = _cli_xla_store.key_name()
    current_size = 200 + len(json.dumps(_cli_xla_store.machine_key(), sort_keys=True))
    old_size = 800 + len(json.dumps(OLD_KEY))
    assert old_size < 1024
    (xla,) = [line for line in lines if line.startswith(f"xla/{current}")]
    assert xla.startswith(f"xla/{current} {_cli_cache.human(current_size)} this machine "
                          f"(tensorflow {_cli_xla_store.machine_key()['tensorflow']}, ")
    assert xla.endswith(f"), last used {datetime.date.today().isoformat()}")
    rows = [line for line in lines if not line.startswith(f"xla/{current}")]
    total = 3600 + 2048 + 1024 + 1000 + 30 + 40 + old_size + current_size + 7
    assert rows[1:] == [
        "weights 3.5 KiB", "asset_audio_example/ 500 B", "spleeter_2stems/ 3.0 KiB",
        "datasets 2.0 KiB", "bach_chorales/n3-s12-seed0-drums 2.0 KiB",
        "litert 1.0 KiB", "litert/abc 1.0 KiB",
        "plans 1000 B", "plans/def 1000 B",
        "probes 30 B", "probes/ 30 B 2 files",
        "tuning 40 B", "tuning/ 40 B 1 file",
        f"xla {_cli_cache.human(old_size + current_size)}",
        f"xla/0000000000000000 {old_size} B stale (tensorflow 2.0.0, Old CPU, 4 cores, XLA_FLAGS=--foo), "
        "last used 2026-01-02",
        "other 7 B", "notes.txt 7 B not keras_sep's: never removed",
        f"total {_cli_cache.human(total)}",
    ]
    assert _cli_cache.human(total) == f"{total / 1024:.1f} KiB"


def test_a_plain_clear_keeps_the_weights_and_datasets(cache, capsys):
    code, lines, _ = run(capsys, "clear")
    assert code == 0
    assert present(cache) == [
        "asset_audio_example", "asset_audio_example/files", "asset_audio_example/files/a.wav",
        "bach_chorales", "bach_chorales/n3-s12-seed0-drums", "bach_chorales/n3-s12-seed0-drums/mix.wav",
        "litert", "notes.txt", "plans", "spleeter_2stems", "spleeter_2stems/model.json",
        "spleeter_2stems/model.keras", "xla",
    ]
    current_size = 200 + len(json.dumps(_cli_xla_store.machine_key(), sort_keys=True))
    old_size = 800 + len(json.dumps(OLD_KEY))
    assert lines == [
        "removed litert: litert/abc (1.0 KiB)", "removed plans: plans/def (1000 B)",
        "removed probes: probes/ (30 B)", "removed tuning: tuning/ (40 B)",
        f"removed xla: xla/0000000000000000 ({old_size} B)",
        f"removed xla: xla/{_cli_xla_store.key_name()} ({_cli_cache.human(current_size)})",
        f"freed {_cli_cache.human(1024 + 1000 + 30 + 40 + old_size + current_size)} in {cache}",
    ]


def test_clear_by_category_and_dry_run(cache, capsys):
    before = present(cache)
    code, lines, _ = run(capsys, "clear", "weights", "probes", "--dry-run")
    assert code == 0 and present(cache) == before
    assert lines == ["would remove weights: asset_audio_example/ (500 B)",
                     "would remove weights: spleeter_2stems/ (3.0 KiB)",
                     "would remove probes: probes/ (30 B)", f"would free 3.5 KiB in {cache}"]
    code, lines, _ = run(capsys, "clear", "weights", "probes")
    assert code == 0 and lines[-1] == f"freed 3.5 KiB in {cache}"
    assert set(before) - set(present(cache)) == {
        "asset_audio_example", "asset_audio_example/files", "asset_audio_example/files/a.wav", "spleeter_2stems",
        "spleeter_2stems/model.json", "spleeter_2stems/model.keras", "probes", "probes/a.json", "probes/b.json"}
    assert run(capsys, "clear", "probes")[1] == ["nothing to remove"]


def test_clear_all_leaves_only_what_is_not_keras_seps(cache, capsys):
    assert run(capsys, "clear", "--all")[0] == 0
    assert present(cache) == ["bach_chorales", "litert", "notes.txt", "plans", "xla"]


def test_stale_removes_other_machine_keys_and_a_running_processs_folder_is_kept(cache, capsys):
    busy = cache / "xla" / "1111111111111111"
    os.makedirs(busy / f"run-{os.getpid()}-abc")  # this process works in it
    write(cache / "xla" / ".removing-x-1-ab" / "z.pb", 3)  # an interrupted removal's leftover
    code, lines, _ = run(capsys, "clear", "stale")
    assert code == 0
    assert lines[0].startswith("removed xla: xla/0000000000000000 (")
    assert lines[1] == "kept xla: xla/1111111111111111 (a running process uses it)"
    assert sorted(os.listdir(cache / "xla")) == ["1111111111111111", _cli_xla_store.key_name()]


def test_an_entry_that_cannot_be_removed_is_named_and_the_rest_goes(cache, capsys, monkeypatch):
    def refuse(path):
        if path.endswith("abc"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    real = _cli_cache.remove_tree
    monkeypatch.setattr(_cli_cache, "remove_tree", refuse)
    code, lines, _ = run(capsys, "clear", "litert", "plans")
    assert code == 0
    assert lines == ["removed plans: plans/def (1000 B)", "kept litert: litert/abc (Permission denied)",
                     f"freed 1000 B in {cache}"]
    assert os.listdir(cache / "litert") == ["abc"] and os.listdir(cache / "plans") == []


def test_an_unknown_category_is_one_line_and_exit_2(cache, capsys):
    before = present(cache)
    code, lines, err = run(capsys, "clear", "probes", "weigths")
    assert code == 2 and lines == [] and present(cache) == before
    assert err.splitlines() == [
        "keras-sep: unknown cache category 'weigths'; known: weights, datasets, litert, plans, probes, tuning, xla, "
        "stale"]


def file_system_now(folder):
    """The time the file system stamps on a file written now (what folder
    ages are measured against), read off a marker file."""
    marker = folder / ".now"
    marker.touch()
    now = marker.stat().st_mtime
    marker.unlink()
    return now


def test_a_new_machine_key_prunes_folders_unused_for_30_days(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    day = 86400
    now = file_system_now(tmp_path)
    for name, age in (("old", 31), ("recent", 29), ("busy", 40)):
        write(tmp_path / "xla" / name / "e.pb", 10)
        os.utime(tmp_path / "xla" / name, (now - age * day,) * 2)
    os.makedirs(tmp_path / "xla" / "busy" / f"run-{os.getpid()}-abc")
    os.utime(tmp_path / "xla" / "busy", (now - 40 * day,) * 2)
    path = _cli_xla_store.folder()
    assert sorted(os.listdir(tmp_path / "xla")) == sorted(["busy", "recent", os.path.basename(path)])
    # A key folder in use is touched, and using it prunes nothing.
    write(tmp_path / "xla" / "old" / "e.pb", 10)
    os.utime(tmp_path / "xla" / "old", (now - 40 * day,) * 2)
    os.utime(path, (now - 40 * day,) * 2)
    before = file_system_now(tmp_path)
    assert _cli_xla_store.folder() == path
    assert os.stat(path).st_mtime >= before  # touched as it was used
    assert "old" in os.listdir(tmp_path / "xla")


def test_the_command_answers_without_tensorflow(cache):
    script = "import sys\nfrom keras_sep import cli\nrc = cli.main(['cache'])\nprint('tensorflow' in sys.modules, rc)\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=dict(os.environ, KERAS_SEP_CACHE=str(cache)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "False 0"


def test_a_cache_folder_is_put_in_place_whole_or_not_at_all(tmp_path, monkeypatch):
    import shutil

    from keras_sep import _cache

    target = tmp_path / "plans" / "key"
    target.parent.mkdir()

    def write(partial):
        os.makedirs(partial)
        open(os.path.join(partial, "a"), "w").write("mine")

    assert _cache.replace_folder(str(target), write) == str(target)
    assert (target / "a").read_text() == "mine"

    def fail(partial):
        write(partial)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _cache.replace_folder(str(target), fail)
    assert os.listdir(target.parent) == ["key"]

    def raced(partial):  # another process puts its own in place after our removal
        write(partial)
        os.makedirs(target)
        open(target / "a", "w").write("theirs")

    shutil.rmtree(target)
    monkeypatch.setattr(_cache, "remove_tree", lambda path: False)  # nothing there yet to remove
    # Theirs is whole and stays; ours is dropped, with nothing left beside it.
    assert _cache.replace_folder(str(target), raced) == str(target)
    assert (target / "a").read_text() == "theirs" and os.listdir(target.parent) == ["key"]


def test_the_program_exits_with_the_commands_code_and_all_of_its_output(tmp_path):
    env = dict(os.environ, KERAS_SEP_CACHE=str(tmp_path))
    listed = subprocess.run([sys.executable, "-m", "keras_sep.cli", "cache", "list"], env=env, capture_output=True,
                            text=True)
    assert listed.returncode == 0 and listed.stdout.splitlines()[0] == f"keras_sep cache: {tmp_path}"
    assert listed.stdout.splitlines()[-1].startswith("total")
    refused = subprocess.run([sys.executable, "-m", "keras_sep.cli", "cache", "clear", "nonsense"], env=env,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "unknown cache category 'nonsense'" in refused.stderr


def test_after_separate_the_program_skips_the_teardown_and_still_delivers_everything(tmp_path):
    # keras-sep ends a separate command without the interpreter's teardown
    # (cli.run): what it printed to a pipe (block-buffered), its stems and
    # its exit code must still arrive; a program calling main() keeps running.
    import numpy as np
    import soundfile as sf

    from test_litert import RATE, small_model

    model = str(tmp_path / "small.keras")
    small_model().save(model)
    song = str(tmp_path / "song.wav")
    sf.write(song, np.random.default_rng(1).uniform(-0.5, 0.5, (3000, 2)).astype(np.float32), RATE)
    env = dict(os.environ, KERAS_SEP_CACHE=str(tmp_path / "cache"))
    probe = ("import atexit, sys\n"
             "atexit.register(lambda: print('teardown ran', flush=True))\n"
             "from keras_sep import cli\n"
             "cli.run()\n")
    done = subprocess.run([sys.executable, "-c", probe, "separate", song, "-m", model, "--engine", "tensorflow",
                           "-o", str(tmp_path / "out")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"{song}:", f"  vocals: {tmp_path / 'out' / 'song' / 'vocals.wav'}",
                                        f"  accompaniment: {tmp_path / 'out' / 'song' / 'accompaniment.wav'}"]
    assert sf.info(str(tmp_path / "out" / "song" / "vocals.wav")).frames == 3000
    refused = subprocess.run([sys.executable, "-c", probe, "separate", str(tmp_path / "missing.wav"), "-m", model,
                              "-o", str(tmp_path / "out2")], env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "missing.wav" in refused.stderr and "teardown ran" not in refused.stdout
    # Other commands end as Python programs do.
    listed = subprocess.run([sys.executable, "-c", probe, "cache", "list"], env=env, capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout.splitlines()[-1] == "teardown ran"
