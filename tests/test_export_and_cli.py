"""SavedModel export (TF Serving layout) and the keras-sep command line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from keras_sep import audio, cli
from keras_sep.separation import Separator
from test_separator import RATE, tiny_model


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(11)
    return tiny_model()


@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return str(path)


LOAD_AND_RUN = """
import sys, numpy as np, tensorflow as tf
served = tf.saved_model.load(sys.argv[1])
fn = served.signatures["serving_default"]
data = np.load(sys.argv[2])
out = {}
for key in data.files:
    result = fn(waveform=tf.constant(data[key]))
    for name, value in result.items():
        out[f"{key}/{name}"] = value.numpy()
np.savez(sys.argv[3], **out)
"""


@pytest.mark.parametrize("chunking, fast", [("overlap", True), ("spleeter", True), ("overlap", False)])
def test_saved_model_reproduces_the_separator(model, tmp_path, chunking, fast):
    """Served through the inference plan (fast) or the Keras layers: the
    same output as the separator, in a fresh process."""
    from keras_sep import export

    sep = Separator(model, chunking=chunking)
    path = export.export_saved_model(sep, str(tmp_path / "serving" / "tiny" / "1"), fast=fast)
    # The plan's weights are constants of the graph: no variables besides.
    saved = [n for n, _ in tf.train.list_variables(os.path.join(path, "variables", "variables")) if not n.startswith("_")]
    assert len(saved) == (0 if fast else len(model.weights))
    shown = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "saved_model_cli"), "show", "--dir", path,
         "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "inputs['waveform']" in shown and "(-1, 2)" in shown
    for name in model.instruments:
        assert f"outputs['{name}']" in shown
    meta = json.load(open(os.path.join(path, "assets.extra", "keras_sep.json")))
    assert meta["sample_rate"] == RATE and meta["instruments"] == list(model.instruments)

    rng = np.random.default_rng(0)
    inputs = {f"n{n}": rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32) for n in (1, 1500, 7000)}
    np.savez(tmp_path / "in.npz", **inputs)
    subprocess.run(
        [sys.executable, "-c", LOAD_AND_RUN, path, str(tmp_path / "in.npz"), str(tmp_path / "out.npz")],
        check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    served = np.load(tmp_path / "out.npz")
    for key, wave in inputs.items():
        expected = sep.separate(wave, sample_rate=RATE)
        for name in model.instruments:
            assert served[f"{key}/{name}"].shape == wave.shape
            np.testing.assert_allclose(served[f"{key}/{name}"], expected[name], atol=1e-5)


def test_cli_help_does_not_import_tensorflow():
    """--help answers at once: the modules the choice lists come from load no TensorFlow."""
    code = (
        "import sys, contextlib, io\nfrom keras_sep import cli\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['separate', '--help'])\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False False"


def test_cli_skips_keras_optional_imports_and_still_plots(model_file, tmp_path):
    """The CLI imports Keras without scikit-learn and matplotlib (start-up
    time), yet --plot draws with matplotlib afterwards."""
    sf.write(tmp_path / "a.wav", np.random.default_rng(2).uniform(-0.5, 0.5, (4000, 2)).astype(np.float32), RATE)
    code = (
        "import sys; from keras_sep import cli\n"
        f"rc = cli.main(['separate', {str(tmp_path / 'a.wav')!r}, '-o', {str(tmp_path / 'out')!r}, "
        f"'-m', {model_file!r}, '--plot'])\n"
        "import keras.src.wrappers.fixes as fixes\n"
        "print(rc, 'sklearn' in sys.modules, fixes.sklearn is None, 'matplotlib.pyplot' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "0 False True True"
    assert (tmp_path / "out" / "a.png").stat().st_size > 10_000


def test_cli_separate_writes_stems_and_fails_on_bad_input(model, model_file, tmp_path, capsys):
    wave = np.random.default_rng(1).uniform(-0.5, 0.5, (6000, 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, RATE, subtype="FLOAT")
    (tmp_path / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    out = tmp_path / "out"
    code = cli.main([
        "separate", str(tmp_path / "broken.wav"), str(tmp_path / "a.wav"), "-o", str(out),
        "-m", model_file, "--codec", "flac", "--offset", "0.1", "--duration", "0.5",
        "--filename-format", "{instrument}/{track}.{codec}", "--plot",
    ])
    captured = capsys.readouterr()
    assert code == 1
    assert "broken.wav: cannot read audio" in captured.err
    expected = Separator(model).separate(wave[800:4800], sample_rate=RATE)
    for name in model.instruments:
        data, rate = sf.read(out / name / "a.flac", dtype="float32")
        assert rate == RATE and data.shape == (4000, 2)
        np.testing.assert_allclose(data, np.clip(expected[name], -1, 1), atol=2.0**-20)
    assert (out / "a.png").stat().st_size > 10_000
    assert sorted(p.name for p in out.rglob("*")) == sorted(
        ["a.png", "a.flac", "a.flac", "vocals", "accompaniment"]
    )
    # Existing outputs are kept unless --overwrite.
    assert cli.main(["separate", str(tmp_path / "a.wav"), "-o", str(out), "-m", model_file,
                     "--codec", "flac", "--filename-format", "{instrument}/{track}.{codec}"]) == 1
    assert cli.main(["separate", str(tmp_path / "a.wav"), "-o", str(out), "-m", model_file,
                     "--codec", "flac", "--filename-format", "{instrument}/{track}.{codec}",
                     "--overwrite"]) == 0


@pytest.mark.parametrize("codec", ["mp3", "m4a"])
def test_cli_writes_lossy_stems_in_time(model, model_file, tmp_path, codec):
    pytest.importorskip("av")
    wave = np.random.default_rng(3).uniform(-0.3, 0.3, (6000, 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, RATE, subtype="FLOAT")
    assert cli.main(["separate", str(tmp_path / "a.wav"), "-o", str(tmp_path / "out"), "-m", model_file,
                     "--codec", codec]) == 0
    expected = Separator(model).separate(wave, sample_rate=RATE)
    for name in model.instruments:
        data, rate = audio.load(tmp_path / "out" / "a" / f"{name}.{codec}")
        assert rate == RATE and 0 <= len(data) - len(wave) <= 2048
        reference = np.clip(expected[name], -1, 1)
        error = data[: len(wave)] - reference
        # MP3 gives 14 dB here, AAC 28; white noise one sample late, about -3.
        assert 10 * np.log10(np.sum(reference**2) / np.sum(error**2)) > 8


def test_cli_bitrate_sets_the_lossy_rate_and_bad_ones_stop_before_any_output(model_file, tmp_path, capsys):
    seconds = 3.0
    wave = np.random.default_rng(4).uniform(-0.3, 0.3, (int(seconds * RATE), 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, RATE, subtype="FLOAT")
    sizes = {}
    for bitrate in ("24k", "64k"):  # MPEG-2.5 rates: RATE is 8 kHz
        out = tmp_path / bitrate
        assert cli.main(["separate", str(tmp_path / "a.wav"), "-o", str(out), "-m", model_file,
                         "--codec", "mp3", "-b", bitrate]) == 0
        sizes[bitrate] = [os.path.getsize(out / "a" / f"{name}.mp3") * 8 / seconds for name in ("vocals", "accompaniment")]
    # Constant bit rate: the rate times the duration, plus LAME's info and
    # padding frames (72 ms each at 8 kHz) and the ID3 trailer: 8 % here,
    # so the files' sizes keep the rates' ratio.
    for bitrate, measured in sizes.items():
        target = int(bitrate[:-1]) * 1000
        assert all(target <= m <= 1.1 * target for m in measured), (bitrate, measured)
    ratio = np.array(sizes["64k"]) / np.array(sizes["24k"])
    np.testing.assert_allclose(ratio, 64 / 24, rtol=0.02)
    capsys.readouterr()
    for args, message in (
        (["-b", "fast", "--codec", "mp3"], "bad bit rate 'fast'"),
        (["-b", "128k"], "--bitrate is for the lossy codecs (mp3, ogg, m4a); wav is lossless"),
        (["-b", "96k", "--codec", "mp3"], "mp3 at 8000 Hz, 2 channel(s) takes 8k to 64k bits/s, not 96k"),
    ):
        out = tmp_path / "bad"
        code = cli.main(["separate", str(tmp_path / "a.wav"), "-o", str(out), "-m", model_file, *args])
        err = capsys.readouterr().err.strip()
        assert code != 0 and message in err and "\n" not in err, (args, err)
        assert not out.exists() or not any(out.rglob("*.*")), args


def test_cli_separate_in_bfloat16(model, model_file, tmp_path):
    wave = np.random.default_rng(2).uniform(-0.5, 0.5, (5000, 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, RATE, subtype="FLOAT")
    assert cli.main(["separate", str(tmp_path / "a.wav"), "-o", str(tmp_path), "-m", model_file,
                     "--precision", "bfloat16"]) == 0
    expected = Separator(model, precision="bfloat16").separate(wave, sample_rate=RATE)
    for name in model.instruments:
        data, _ = sf.read(tmp_path / "a" / f"{name}.wav", dtype="float32")
        np.testing.assert_allclose(data, np.clip(expected[name], -1, 1), atol=2.0**-14)


def test_cli_mwf_writes_wiener_filtered_stems(model, model_file, tmp_path):
    wave = np.random.default_rng(4).uniform(-0.5, 0.5, (7000, 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, RATE, subtype="FLOAT")
    assert cli.main(["separate", str(tmp_path / "a.wav"), "-o", str(tmp_path), "-m", model_file, "--mwf"]) == 0
    expected = Separator(model, mwf=True).separate(wave, sample_rate=RATE)
    masked = Separator(model).separate(wave, sample_rate=RATE)
    for name in model.instruments:
        data, _ = sf.read(tmp_path / "a" / f"{name}.wav", dtype="float32")
        np.testing.assert_allclose(data, expected[name], atol=1e-5)
        assert np.abs(data - masked[name]).max() > 1e-3


def test_mwf_separator_is_not_exported(model, tmp_path):
    from keras_sep.export import export_saved_model

    with pytest.raises(ValueError, match="mwf=True cannot be exported"):
        export_saved_model(Separator(model, mwf=True), str(tmp_path / "m" / "1"))
    assert not (tmp_path / "m").exists()


def test_cli_keeps_inputs_of_the_same_name_apart(model, model_file, tmp_path, capsys):
    """a/01.wav and b/01.wav: under the default format the second may not
    overwrite the first's stems (even with --overwrite); with {foldername}
    both are written, each with its own plot."""
    rng = np.random.default_rng(8)
    waves = {}
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        waves[folder] = rng.uniform(-0.5, 0.5, (3000, 2)).astype(np.float32)
        sf.write(tmp_path / folder / "01.wav", waves[folder], RATE, subtype="FLOAT")
    inputs = [str(tmp_path / "a" / "01.wav"), str(tmp_path / "b" / "01.wav")]
    out = tmp_path / "out"
    assert cli.main(["separate", *inputs, "-o", str(out), "-m", model_file, "--overwrite"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "b/01.wav: output" in err and "a/01.wav in this run" in err
    assert "{foldername}" in err
    expected = Separator(model).separate(waves["a"], sample_rate=RATE)
    for name in model.instruments:
        np.testing.assert_allclose(sf.read(out / "01" / f"{name}.wav", dtype="float32")[0], expected[name], atol=1e-6)

    code = cli.main(["separate", *inputs, "-o", str(out / "apart"), "-m", model_file, "--plot",
                     "--filename-format", "{foldername}/{track}/{instrument}.{codec}"])
    assert code == 0
    for folder in ("a", "b"):
        expected = Separator(model).separate(waves[folder], sample_rate=RATE)
        for name in model.instruments:
            written = sf.read(out / "apart" / folder / "01" / f"{name}.wav", dtype="float32")[0]
            np.testing.assert_allclose(written, expected[name], atol=1e-6)
        assert (out / "apart" / folder / "01.png").stat().st_size > 10_000
    assert not list((out / "apart").rglob(".partial-*"))


def test_cli_bad_inputs_and_format_are_one_line_errors_without_leftovers(model_file, tmp_path, capsys):
    sf.write(tmp_path / "empty.wav", np.zeros((0, 2), np.float32), RATE)
    (tmp_path / "folder.wav").mkdir()
    out = tmp_path / "out"
    bad = [str(tmp_path / name) for name in ("missing.wav", "folder.wav", "empty.wav")]
    assert cli.main(["separate", *bad, "-o", str(out), "-m", model_file]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ", 2)[2] for line in lines] == [
        "no such file", "no audio files in this folder",
        "no audio samples (an empty file, or an offset at or past its end)",
    ]
    assert not out.exists() or not any(out.iterdir())  # not even an empty track folder
    sf.write(tmp_path / "short.wav", np.zeros((RATE // 2, 2), np.float32), RATE)
    assert cli.main(["separate", str(tmp_path / "short.wav"), "-o", str(out), "-m", model_file, "--offset", "3"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("short.wav: offset 3 s is past the end of the audio (0.50 s)")
    for option, value, message in [("--offset", "-1", "--offset must be >= 0 seconds, got -1"),
                                   ("--duration", "0", "--duration must be > 0 seconds, got 0"),
                                   ("--duration", "nan", "--duration must be > 0 seconds, got nan")]:
        assert cli.main(["separate", str(tmp_path / "short.wav"), "-o", str(out), "-m", model_file, option, value]) == 2
        assert capsys.readouterr().err.strip() == f"keras-sep: {message}"
    assert not out.exists() or not any(out.iterdir())
    code = cli.main(["separate", str(tmp_path / "empty.wav"), "-o", str(out), "-m", model_file,
                     "--filename-format", "{song}/{instrument}.{codec}"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keras-sep: --filename-format:") and "unknown field {song}" in err and "\n" not in err


def test_cli_unknown_model_is_one_line_error(model, tmp_path, capsys):
    assert cli.main(["separate", "x.wav", "-o", str(tmp_path), "-m", "spleeter:9stems"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keras-sep: unknown preset 'spleeter:9stems'") and "\n" not in err
    (tmp_path / "text.keras").write_text("not a model")
    (tmp_path / "folder.keras").mkdir()
    model.spectrogram_model.save(tmp_path / "network.keras")
    for name, message in [
        ("missing.keras", "no such model file (or preset)"),
        ("text.keras", "not a .keras model file (Keras' zip archive)"),
        ("folder.keras", "is a directory, not a .keras model file"),
        ("network.keras", "Separator needs a WaveformSeparator (waveform in, stems out), got UNetSeparator, "
                          "a spectrogram network: wrap it, keras_sep.models.WaveformSeparator(network)"),
    ]:
        path = str(tmp_path / name)
        assert cli.main(["separate", "x.wav", "-o", str(tmp_path / "out"), "-m", path]) == 2
        assert capsys.readouterr().err.strip() == f"keras-sep: {path}: {message}"
    assert not (tmp_path / "out").exists()


def test_cli_evaluate_prints_the_table(model_file, tmp_path, capsys):
    rng = np.random.default_rng(5)
    folder = tmp_path / "test" / "song"
    folder.mkdir(parents=True)
    for name in ("vocals", "drums", "bass"):
        sf.write(folder / f"{name}.wav", rng.uniform(-0.3, 0.3, (3 * RATE, 2)).astype(np.float32), RATE)
    out_json = tmp_path / "scores.json"
    code = cli.main(["evaluate", str(tmp_path), "-m", model_file, "--target", "vocals=vocals",
                     "--target", "accompaniment=drums+bass", "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "| model | vocals |" in printed and "| oracle_ibm | accompaniment |" in printed
    saved = json.load(open(out_json))
    assert set(saved["tracks"]["song"]) == {"model", "mixture", "oracle_irm", "oracle_ibm"}
    assert cli.main(["evaluate", str(tmp_path / "nowhere"), "-m", model_file]) == 1
