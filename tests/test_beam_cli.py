"""`keras-sep separate-beam`'s command line, without running Beam: options it
does not know go to Beam (and only for this command), and a missing extra
is one line."""
import sys
import types

import pytest

from keras_sep import cli


@pytest.fixture
def fake_beam(monkeypatch):
    """keras_sep.beam replaced by a recorder of separate_files' arguments."""
    calls = []

    def separate_files(pattern, output_prefix, model, **kwargs):
        calls.append(dict(pattern=pattern, output_prefix=output_prefix, model=model, **kwargs))
        return {"separated": 2, "skipped": 1, "failed": len(calls) - 1}

    module = types.SimpleNamespace(separate_files=separate_files, failed_path=lambda prefix: f"{prefix}/failed.tsv")
    monkeypatch.setitem(sys.modules, "keras_sep.beam", module)
    monkeypatch.setattr("keras_sep.beam", module, raising=False)
    return calls


def test_unknown_options_go_to_beam_in_order(fake_beam, capsys):
    argv = ["separate-beam", "gs://b/music/*.mp3", "-o", "gs://b/stems", "--project", "p", "--region=europe-west1",
            "--runner", "DataflowRunner", "--max_num_workers", "8", "--save_main_session", "--codec", "flac"]
    assert cli.main(argv) == 0
    (call,) = fake_beam
    assert call["pipeline_args"] == ["--project", "p", "--region=europe-west1", "--max_num_workers", "8",
                                     "--save_main_session"]
    assert (call["pattern"], call["output_prefix"], call["model"]) == ("gs://b/music/*.mp3", "gs://b/stems",
                                                                      cli.DEFAULT_MODEL)
    assert (call["runner"], call["codec"], call["batch_size"]) == ("DataflowRunner", "flac", None)
    assert not call["overwrite"]
    assert capsys.readouterr().out == "separated 2, skipped 1 (stems existed), failed 0\n"
    # A failed file makes the exit status 1 and names the dead-letter file.
    assert cli.main(["separate-beam", "in/*.wav", "-o", "out"]) == 1
    assert fake_beam[1]["pipeline_args"] == [] and fake_beam[1]["runner"] == "DirectRunner"
    assert capsys.readouterr().out.splitlines()[1] == "failures: out/failed.tsv"


def test_other_commands_still_reject_unknown_options(fake_beam, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["separate", "a.wav", "--project=p"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --project=p" in capsys.readouterr().err
    assert fake_beam == []


def test_without_beam_installed_one_line_and_exit_2(monkeypatch, capfd):
    monkeypatch.setitem(sys.modules, "keras_sep.beam", None)  # import fails as if apache_beam were missing
    monkeypatch.delattr("keras_sep.beam", raising=False)
    assert cli.main(["separate-beam", "in/*.wav", "-o", "out"]) == 2
    (line,) = capfd.readouterr().err.splitlines()
    assert line.startswith("keras-sep: separate-beam needs Apache Beam: pip install 'keras-sep[beam]' (")
