"""keras-sep timbre-transfer end to end on a tiny saved DDSPAutoencoder."""
import numpy as np
import pytest
import soundfile as sf

from keras_sep import cli
from keras_sep.models import ddsp_autoencoder

RATE = 16000


def sine_model(harmonics=8):
    """A DDSPAutoencoder whose decoder always outputs a loud fundamental and
    nothing else (kernel zeroed, bias fixed), without noise or reverb."""
    model = ddsp_autoencoder(hidden_units=8, gru_units=8, mlp_layers=1, harmonics=harmonics, noise_bands=9,
                             reverb_length=0, noise_seed=0)
    dense = model.get_layer("controls")
    bias = np.concatenate([[2.0], [20.0], np.full(harmonics - 1, -20.0), np.full(9, -1e3)]).astype("float32")
    dense.set_weights([np.zeros_like(dense.get_weights()[0]), bias])
    return model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddsp") / "tiny.keras"
    sine_model().save(path)
    return str(path)


def _peak_hz(wave, rate=RATE):
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return np.argmax(spectrum) * rate / len(wave)


@pytest.mark.parametrize("shift, factor", [("0", 1.0), ("12", 2.0), ("-7", 2 ** (-7 / 12))])
def test_transfer_follows_the_input_pitch_and_shift(model_file, tmp_path, shift, factor):
    t = np.arange(int(1.5 * 44100)) / 44100
    sf.write(tmp_path / "in.wav", 0.5 * np.sin(2 * np.pi * 330 * t), 44100)  # resampled to the model's rate
    out = tmp_path / "out.wav"
    assert cli.main(["timbre-transfer", str(tmp_path / "in.wav"), "-m", model_file, "-o", str(out),
                     "--pitch-shift", shift]) == 0
    wave, rate = sf.read(out)
    assert rate == RATE and wave.shape == (1.5 * RATE // 64 * 64,)
    assert abs(_peak_hz(wave[RATE // 4 : -RATE // 4]) / (330 * factor) - 1) < 0.01


def test_bad_inputs_are_one_line_errors_without_output(model_file, tmp_path, capsys):
    out = tmp_path / "out.wav"
    assert cli.main(["timbre-transfer", str(tmp_path / "missing.wav"), "-m", model_file, "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.wav" in err[0]
    sf.write(tmp_path / "short.wav", np.zeros(10), RATE)
    assert cli.main(["timbre-transfer", str(tmp_path / "short.wav"), "-m", model_file, "-o", str(out)]) == 1
    assert "shorter than one frame" in capsys.readouterr().err
    sf.write(tmp_path / "in.wav", np.zeros(RATE), RATE)
    assert cli.main(["timbre-transfer", str(tmp_path / "in.wav"), "-m", model_file, "-o",
                     str(tmp_path / "out.xyz")]) == 1
    assert "unsupported codec" in capsys.readouterr().err
    assert cli.main(["timbre-transfer", str(tmp_path / "in.wav"), "-m", str(tmp_path / "none.keras"),
                     "-o", str(out)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert cli.main(["timbre-transfer", str(tmp_path / "in.wav"), "-m", model_file, "-o", str(out),
                     "--pitch-shift", "nan"]) == 2
    assert "--pitch-shift" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav", "short.wav"]
