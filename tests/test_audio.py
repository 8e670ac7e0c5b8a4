import os
import stat

import numpy as np
import pytest
import soundfile as sf

from keras_sep import audio


def _tone(seconds, rate, freq=440.0, channels=2):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wave] * channels, axis=1)


def test_wav_round_trip_is_exact(tmp_path):
    wave = np.random.default_rng(0).uniform(-1, 1, (1000, 2)).astype(np.float32)
    path = tmp_path / "x.wav"
    audio.save(path, wave, 22050)
    loaded, rate = audio.load(path)
    assert rate == 22050
    np.testing.assert_array_equal(loaded, wave)


def test_flac_is_24_bit_and_clipped(tmp_path):
    wave = np.array([[0.5, -0.25], [2.0, -3.0]], np.float32)
    path = tmp_path / "x.flac"
    audio.save(path, wave, 44100)
    loaded, _ = audio.load(path)
    np.testing.assert_allclose(loaded, np.clip(wave, -1, 1), atol=2.0**-22)


def test_offset_and_duration(tmp_path):
    wave = np.arange(100, dtype=np.float32)[:, None] / 100
    audio.save(tmp_path / "r.wav", wave, 10)
    loaded, _ = audio.load(tmp_path / "r.wav", offset=2.0, duration=3.0)
    np.testing.assert_array_equal(loaded[:, 0], wave[20:50, 0])


def test_resample_keeps_the_tone(tmp_path):
    wave = _tone(1.0, 8000, freq=440.0, channels=1)
    audio.save(tmp_path / "t.wav", wave, 8000)
    loaded, rate = audio.load(tmp_path / "t.wav", sample_rate=44100)
    assert rate == 44100
    assert abs(len(loaded) - 44100) <= 1
    expected = _tone(1.0, 44100, freq=440.0, channels=1)[: len(loaded)]
    middle = slice(2000, -2000)  # away from the resampler's edge transients
    np.testing.assert_allclose(loaded[middle], expected[middle], atol=2e-3)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_written_files_get_the_umask_permissions(tmp_path):
    """The temporary file is private; the finished one is readable as any
    new file (0666 less the umask), not left at mkstemp's 0600."""
    old = os.umask(0o022)
    try:
        audio.save(tmp_path / "a.wav", np.zeros((10, 2), np.float32), 8000)
        os.umask(0o027)
        audio.save(tmp_path / "b.flac", np.zeros((10, 2), np.float32), 8000)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "a.wav").st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "b.flac").st_mode) == 0o640


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.wav"
    with pytest.raises(RuntimeError):
        with audio.AtomicWriter(target, 44100, 2) as writer:
            writer.write(np.zeros((10, 2), np.float32))
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []


def test_output_under_a_file_is_a_one_line_error(tmp_path):
    (tmp_path / "taken").write_text("a file, not a folder")
    target = tmp_path / "taken" / "song" / "vocals.wav"
    with pytest.raises(audio.AudioError) as error:
        audio.save(target, np.zeros((10, 2), np.float32), 44100)
    text = str(error.value)
    assert text.startswith(f"{target}: cannot create it (Not a directory") and "\n" not in text
    assert sorted(os.listdir(tmp_path)) == ["taken"]


def test_failed_write_removes_only_the_folders_it_made(tmp_path):
    kept = tmp_path / "kept"
    kept.mkdir()
    with pytest.raises(RuntimeError):
        with audio.AtomicWriter(kept / "new" / "deeper" / "a.wav", 44100, 2) as first:
            with audio.AtomicWriter(kept / "new" / "deeper" / "b.wav", 44100, 2):
                first.write(np.zeros((10, 2), np.float32))
                raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["kept"] and os.listdir(kept) == []
    # A folder that holds another file stays.
    (kept / "new").mkdir()
    (kept / "new" / "other.txt").write_text("x")
    with pytest.raises(RuntimeError):
        with audio.AtomicWriter(kept / "new" / "deeper" / "a.wav", 44100, 2):
            raise RuntimeError("interrupted")
    assert sorted(os.listdir(kept / "new")) == ["other.txt"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)])
def test_publishing_renames_the_finished_file_with_the_umask_permissions(tmp_path, umask, mode):
    target = tmp_path / "figure.png"
    old = os.umask(umask)
    try:
        with audio.publishing(target) as temporary:
            # Written beside the target under another name, private until done.
            assert os.path.dirname(temporary) == str(tmp_path) and not target.exists()
            assert stat.S_IMODE(os.stat(temporary).st_mode) == 0o600
            with open(temporary, "wb") as handle:
                handle.write(b"complete")
    finally:
        os.umask(old)
    assert os.listdir(tmp_path) == ["figure.png"] and target.read_bytes() == b"complete"
    assert stat.S_IMODE(os.stat(target).st_mode) == mode


def test_publishing_failure_leaves_no_file_and_no_folder_it_made(tmp_path):
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with audio.publishing(kept) as temporary:
            with open(temporary, "w") as handle:
                handle.write("half")
            raise KeyboardInterrupt  # not only Exception: an interrupt too
    assert os.listdir(tmp_path) == ["kept.txt"] and kept.read_text() == "old"
    with pytest.raises(RuntimeError, match="interrupted"):
        with audio.publishing(tmp_path / "new" / "deeper" / "a.png"):
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == ["kept.txt"]


def test_publishing_that_cannot_rename_removes_the_temporary_file(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "inside").write_text("x")  # a non-empty folder cannot be replaced
    with pytest.raises(OSError):
        with audio.publishing(target) as temporary:
            with open(temporary, "w") as handle:
                handle.write("done")
    assert os.listdir(tmp_path) == ["taken"] and os.listdir(target) == ["inside"]


def test_encoder_that_cannot_open_or_finish_leaves_nothing(tmp_path, monkeypatch):
    opened = sf.SoundFile

    class FailsToFinish:
        def __init__(self, *args, **kwargs):
            self._file = opened(*args, **kwargs)

        def write(self, block):
            self._file.write(block)

        def close(self):
            self._file.close()
            raise RuntimeError("disk full\n  at close")

    def fails_to_open(*args, **kwargs):
        raise RuntimeError("no encoder")

    target = tmp_path / "new" / "out.wav"
    monkeypatch.setattr(sf, "SoundFile", fails_to_open)
    with pytest.raises(audio.AudioError, match=r"out\.wav: cannot write wav \(no encoder\)$"):
        audio.save(target, np.zeros((10, 2), np.float32), 8000)
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(sf, "SoundFile", FailsToFinish)
    with pytest.raises(audio.AudioError, match=r"out\.wav: cannot write wav \(disk full at close\)$"):
        audio.save(target, np.zeros((10, 2), np.float32), 8000)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_text("this is not audio"), "cannot read audio"),
        (lambda p: p.write_bytes(b""), "cannot read audio"),
    ],
)
def test_unreadable_files_name_the_file(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(audio.AudioError) as error:
        audio.load(path)
    text = str(error.value)
    assert text.startswith(str(path)) and message in text and "\n" not in text


def test_empty_audio_file(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 2), np.float32), 44100)
    with pytest.raises(audio.AudioError, match="empty.wav: no audio samples"):
        audio.load(path)


def test_truncated_wav_reads_what_is_there(tmp_path):
    path = tmp_path / "cut.wav"
    wave = np.linspace(-1, 1, 2000, dtype=np.float32)[:, None]
    sf.write(path, wave, 8000, subtype="FLOAT")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 4000])  # lose the last 1000 samples
    loaded, _ = audio.load(path)
    np.testing.assert_array_equal(loaded[:, 0], wave[: len(loaded), 0])
    assert len(loaded) == 1000


def test_check_waveform_rejects_nan_and_bad_shapes():
    with pytest.raises(audio.AudioError, match="NaN or infinite"):
        audio.check_waveform(np.array([[0.0, np.nan]]), "x")
    with pytest.raises(audio.AudioError, match="empty"):
        audio.check_waveform(np.zeros((0, 2)), "x")
    with pytest.raises(audio.AudioError, match="shape"):
        audio.check_waveform(np.zeros((2, 2, 2)), "x")
    ints = audio.check_waveform(np.array([[16384, -32768]], np.int16))
    np.testing.assert_allclose(ints, [[0.5, -1.0]])
    bytes_ = audio.check_waveform(np.array([[128, 0], [255, 192]], np.uint8))
    np.testing.assert_allclose(bytes_, [[0.0, -1.0], [127 / 128, 0.5]])


def test_integer_arrays_scale_as_the_files_read(tmp_path):
    """A PCM array gives the same samples as the file that holds it."""
    raw = np.random.default_rng(3).integers(-32768, 32768, (500, 2)).astype(np.int16)
    sf.write(tmp_path / "pcm.wav", raw, 8000, subtype="PCM_16")
    read, _ = sf.read(tmp_path / "pcm.wav", dtype="float32")
    np.testing.assert_array_equal(audio.check_waveform(raw), read)
    assert audio.check_waveform(np.zeros(5)).shape == (5, 1)


# --- formats only FFmpeg reads (PyAV) ------------------------------------------

try:
    import av
except ImportError:  # a dependency; without it only these tests are skipped
    av = None
needs_av = pytest.mark.skipif(av is None, reason="PyAV (av) is not installed")
from pyav_files import encode as _encode, reference_decode as _reference_decode  # noqa: E402


@needs_av
@pytest.mark.parametrize(
    "codec, sample_format, expected",
    [
        ("pcm_s16le", "s16", lambda w: np.round(w * 32767) / 32768),
        ("pcm_u8", "u8", lambda w: (np.round(w * 127 + 128) - 128) / 128),
        ("pcm_f32le", "flt", lambda w: w),
    ],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_matroska_pcm_decodes_exactly(tmp_path, codec, sample_format, expected, channels):
    """libsndfile cannot open Matroska audio: PyAV decodes it, and integer
    samples come back scaled as libsndfile scales them (by 2^(bits-1))."""
    path = tmp_path / "tone.mka"
    wave = _tone(0.3, 16000, channels=channels) * 1.6  # peaks at 0.8
    _encode(path, wave, 16000, codec, sample_format, container="matroska")
    rate, got_channels, frames = audio.info(path)
    assert (rate, got_channels) == (16000, channels)
    loaded, loaded_rate = audio.load(path)
    assert loaded_rate == 16000 and loaded.dtype == np.float32 and loaded.shape == wave.shape
    np.testing.assert_allclose(loaded, expected(wave.astype(np.float64)), atol=1e-7)
    assert abs(frames - len(wave)) <= 1


@needs_av
def test_aac_m4a_decodes_like_ffmpeg_with_exact_offsets(tmp_path):
    path = tmp_path / "song.m4a"
    rate = 44100
    wave = _tone(1.0, rate, freq=1000.0)
    _encode(path, wave, rate, "aac", "fltp")
    reference = _reference_decode(path)
    reader = audio.AudioReader(path)
    assert (reader.sample_rate, reader.channels) == (rate, 2)
    blocks = list(reader.blocks(10000))
    assert all(len(b) == 10000 for b in blocks[:-1]) and 0 < len(blocks[-1]) <= 10000
    decoded = np.concatenate(blocks)
    np.testing.assert_array_equal(decoded, reference)
    # The stated duration is the encoded one; decoding adds the codec's
    # priming and padding, as FFmpeg's command does.
    assert abs(reader.frames - len(wave)) <= 2048 and len(decoded) - len(wave) < 4096
    spectrum = np.abs(np.fft.rfft(decoded[:, 0]))
    assert abs(np.argmax(spectrum) * rate / (2 * (len(spectrum) - 1)) - 1000.0) < 2.0
    part, _ = audio.load(path, offset=0.25, duration=0.5)
    np.testing.assert_array_equal(part, reference[11025:33075])


@needs_av
def test_without_pyav_the_error_says_what_to_install(tmp_path, monkeypatch):
    import sys

    path = tmp_path / "tone.mka"
    _encode(path, _tone(0.1, 8000), 8000, "pcm_s16le", "s16", container="matroska")
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    with pytest.raises(audio.AudioError) as error:
        audio.load(path)
    text = str(error.value)
    assert text.startswith(f"{path}: cannot read audio") and "pip install av" in text and "\n" not in text


@needs_av
def test_not_audio_names_both_decoders(tmp_path):
    path = tmp_path / "notes.m4a"
    path.write_text("not audio at all\n" * 50)
    with pytest.raises(audio.AudioError) as error:
        audio.load(path)
    text = str(error.value)
    assert text.startswith(f"{path}: cannot read audio") and "libsndfile" in text and "FFmpeg" in text
    assert "\n" not in text and "Errno" not in text


def _band_noise(seconds, rate, seed=0):
    """Stereo noise below 5 kHz: lossy codecs keep it, and any shift of a
    sample or more shows as a large error."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    spectrum = np.fft.rfft(rng.standard_normal((n, 2)), axis=0)
    spectrum[int(5000 * n / rate):] = 0
    wave = np.fft.irfft(spectrum, n, axis=0)
    return (0.3 * wave / np.abs(wave).max()).astype(np.float32)


@pytest.mark.parametrize("codec", ["mp3", "ogg", pytest.param("m4a", marks=needs_av)])
def test_lossy_codecs_come_back_aligned(tmp_path, codec):
    """Lossy outputs keep rate, channels and timing: at lag 0 the decoded
    signal is above 8 dB SNR against the original (this noise two samples
    late is below it; MP3 gives 19, Vorbis 12, AAC 26), and its length is the original's plus at most the
    codec's padding."""
    rate = 44100
    wave = _band_noise(1.0, rate)
    path = tmp_path / f"stem.{codec}"
    audio.save(path, wave, rate)
    decoded, decoded_rate = audio.load(path)
    assert decoded_rate == rate and decoded.shape[1] == 2
    assert 0 <= len(decoded) - len(wave) <= 2048
    n = min(len(wave), len(decoded))
    error = wave[:n] - decoded[:n]
    assert 10 * np.log10(np.sum(wave[:n] ** 2) / np.sum(error**2)) > 8
    # The threshold catches a shift: the signal against itself two samples late.
    late = wave[2:] - wave[:-2]
    assert 10 * np.log10(np.sum(wave[2:] ** 2) / np.sum(late**2)) < 8


def test_codec_that_cannot_hold_the_rate_is_refused_before_writing(tmp_path):
    path = tmp_path / "out" / "stem.mp3"
    with pytest.raises(audio.AudioError) as error:
        audio.save(path, np.zeros((100, 2), np.float32), 96000)
    text = str(error.value)
    assert text.startswith(str(path)) and "96000 Hz" in text and "\n" not in text
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bit_rates_parse_from_numbers_and_kilobits():
    assert audio.parse_bitrate("128k") == audio.parse_bitrate("128K") == audio.parse_bitrate(128000) == 128000
    assert audio.parse_bitrate(" 96000 ") == 96000 and audio.parse_bitrate("1.5k") == 1500
    for bad in ("12x", "", "k", "-5k", "0", "nan", "0.5", "128kk"):
        with pytest.raises(ValueError, match="bad bit rate"):
            audio.parse_bitrate(bad)


@pytest.mark.parametrize("kbps", [64, 128, 256, 320])
def test_mp3_is_written_at_the_constant_bit_rate_asked(tmp_path, kbps):
    """Constant bit rate: the file is the rate times the duration, plus the
    LAME info frame, the encoder's padding frame and the ID3 trailer (1.9 %
    of 4 s at every rate), and the decoded length is the original's."""
    rate, seconds = 44100, 4.0
    wave = _band_noise(seconds, rate)
    path = tmp_path / "stem.mp3"
    audio.save(path, wave, rate, bitrate=f"{kbps}k")
    measured = os.path.getsize(path) * 8 / seconds
    assert kbps * 1000 <= measured <= kbps * 1000 * 1.04
    decoded, _ = audio.load(path)
    assert len(decoded) == len(wave)


def test_lossy_quality_follows_the_bit_rate(tmp_path):
    """Each lossy codec's file grows and its decoded error falls as the bit
    rate rises (Vorbis is variable: on this band-limited noise it stays
    below the nominal rates, 55 to 152 kb/s for 64k to 500k)."""
    rate, seconds = 44100, 4.0
    wave = _band_noise(seconds, rate)
    codecs = {"mp3": ("64k", "128k", "320k"), "ogg": ("64k", "160k", "500k")}
    if av is not None:
        codecs["m4a"] = ("64k", "128k", "256k")
    for codec, rates in codecs.items():
        sizes, snrs = [], []
        for bitrate in rates:
            path = tmp_path / f"{bitrate}.{codec}"
            audio.save(path, wave, rate, bitrate=bitrate)
            decoded, _ = audio.load(path)
            error = decoded[: len(wave)] - wave
            sizes.append(os.path.getsize(path))
            snrs.append(10 * np.log10(np.sum(wave**2) / np.sum(error**2)))
        assert sizes == sorted(sizes) and sizes[-1] > 1.8 * sizes[0], (codec, sizes)
        assert snrs == sorted(snrs) and snrs[-1] > snrs[0] + 10, (codec, snrs)
        if codec == "m4a":  # AAC meets its target within a few per cent
            assert 0.9 < sizes[-1] * 8 / seconds / 256000 < 1.1


@pytest.mark.parametrize(
    "name, rate, bitrate, message",
    [
        ("stem.wav", 44100, "128k", "wav is lossless and takes no bit rate"),
        ("stem.flac", 44100, "128k", "flac is lossless and takes no bit rate"),
        ("stem.mp3", 44100, "400k", "mp3 at 44100 Hz, 2 channel(s) takes 32k to 320k bits/s, not 400k"),
        ("stem.mp3", 22050, "192k", "mp3 at 22050 Hz, 2 channel(s) takes 8k to 160k bits/s, not 192k"),
        ("stem.ogg", 44100, "20k", "ogg at 44100 Hz, 2 channel(s) takes 64k to 500k bits/s, not 20k"),
        ("stem.mp3", 44100, "fast", "bad bit rate 'fast'"),
    ],
)
def test_a_bit_rate_the_codec_cannot_take_is_refused_before_writing(tmp_path, name, rate, bitrate, message):
    path = tmp_path / "out" / name
    with pytest.raises(audio.AudioError) as error:
        audio.save(path, np.zeros((1000, 2), np.float32), rate, bitrate=bitrate)
    text = str(error.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text
    assert not (tmp_path / "out").exists()
