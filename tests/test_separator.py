"""Separator mechanics on a tiny random U-Net: streaming, chunking, bad input."""
import os

import numpy as np
import pytest
import soundfile as sf

from keras_sep import audio
from keras_sep.models import UNetSeparator, WaveformSeparator
from keras_sep.separation import Separator

RATE = 8000


def tiny_model(overlap=8, **kwargs):
    net = UNetSeparator(filters=(4, 8), bins=32, frames=32, name="tiny_unet", **kwargs)
    return WaveformSeparator(
        net, sample_rate=RATE, frame_length=128, frame_step=32, overlap_frames=overlap
    )


@pytest.fixture(scope="module")
def model():
    import keras

    keras.utils.set_random_seed(7)
    return tiny_model()


def _noise(n, channels=2, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, channels)).astype(np.float32)


def _graph(model, wave, overlap):
    out = model(wave[None], overlap_frames=overlap)
    return {k: np.asarray(v[0]) for k, v in out.items()}


@pytest.mark.parametrize("chunking", ["overlap", "spleeter"])
@pytest.mark.parametrize("length", [1, 700, 4000, 9001])
def test_streaming_equals_whole_signal(model, chunking, length):
    wave = _noise(length, seed=length)
    sep = Separator(model, chunking=chunking, batch_size=3)
    streamed = sep.separate(wave, sample_rate=RATE)
    whole = _graph(model, wave, sep.overlap_frames)
    for name in model.instruments:
        assert streamed[name].shape == (length, 2)
        np.testing.assert_allclose(streamed[name], whole[name], atol=1e-5)


@pytest.mark.parametrize("chunking", ["overlap", "spleeter"])
def test_streaming_feeds_whole_batches(model, chunking):
    """Blocks shorter than a chunk still reach the network batch_size chunks
    at a time (only the last call may hold fewer), with the same output."""
    wave = _noise(9001, seed=5)
    sep = Separator(model, chunking=chunking, batch_size=3)
    sizes = []
    pipeline = sep._pipelines.pipeline

    def recording(batch):
        run = pipeline(batch)
        return lambda segments, weights: sizes.append(len(segments)) or run(segments, weights)

    sep._pipelines.pipeline = recording
    blocks = (wave[i : i + 100] for i in range(0, len(wave), 100))
    streamed = {}
    for out in sep.stream(blocks, RATE):
        for name, block in out.items():
            streamed.setdefault(name, []).append(block)
    total = model.num_chunks(len(wave), sep.overlap_frames)
    assert sum(sizes) == total and total > 6
    assert all(size == 3 for size in sizes[:-1]) and 1 <= sizes[-1] <= 3
    whole = _graph(model, wave, sep.overlap_frames)
    for name in model.instruments:
        np.testing.assert_allclose(np.concatenate(streamed[name]), whole[name], atol=1e-5)


def test_outputs_in_memory_maps_equal_the_whole_signal(model, monkeypatch):
    from keras_sep.separation import outputs

    monkeypatch.setattr(outputs, "_MAPPED_OUTPUT_BYTES", 0)
    wave = _noise(5000, seed=11)
    streamed = Separator(model).separate(wave, sample_rate=RATE)
    whole = _graph(model, wave, model.overlap_frames)
    for name in model.instruments:
        out = streamed[name]
        assert out.dtype == np.float32 and out.shape == (5000, 2) and out.flags.writeable and out.flags.c_contiguous
        np.testing.assert_allclose(out, whole[name], atol=1e-5)


def test_outputs_grow_when_more_samples_come_than_expected(model, monkeypatch):
    from keras_sep.separation import outputs

    real = outputs.output_array
    # Only the first allocation (the expected length) falls short.
    monkeypatch.setattr(outputs, "output_array", lambda frames, channels: real(frames // 3 if frames == 5000 else frames, channels))
    wave = _noise(5000, seed=12)
    streamed = Separator(model).separate(wave, sample_rate=RATE)
    whole = _graph(model, wave, model.overlap_frames)
    for name in model.instruments:
        np.testing.assert_allclose(streamed[name], whole[name], atol=1e-5)


@pytest.mark.parametrize("spare", [1 << 18, 5])
def test_block_size_does_not_change_the_output(model, spare, monkeypatch):
    from keras_sep.separation import engine

    # A tiny spare room makes the input buffer both compact and grow.
    monkeypatch.setattr(engine.ChunkStream, "spare", spare)
    wave = _noise(6000, seed=3)
    sep = Separator(model, batch_size=1)
    reference = _graph(model, wave, model.overlap_frames)
    for size in (1, 97, 1024, 6000):
        blocks = (wave[i : i + size] for i in range(0, len(wave), size))
        parts = list(sep.stream(blocks, RATE))
        for name in model.instruments:
            joined = np.concatenate([p[name] for p in parts])
            np.testing.assert_allclose(joined, reference[name], atol=1e-5)


def test_crossfade_weights_sum_to_one(model):
    n = 5
    weights = np.asarray(model.chunk_weights(np.arange(n), n))
    hop = model.chunk_hop()
    total = np.zeros((n - 1) * hop + model.chunk_frames)
    for c in range(n):
        total[c * hop : c * hop + model.chunk_frames] += weights[c]
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_stems_sum_to_the_mixture_with_average_extension():
    # Ratio masks sum to 1, and so do their per-frame averages above the
    # cutoff: the stems must add up to the input (Hann at 75 % overlap).
    import keras

    keras.utils.set_random_seed(1)
    net = UNetSeparator(filters=(4, 8), bins=32, frames=32, name="average_ext")
    model = WaveformSeparator(
        net, sample_rate=RATE, frame_length=128, frame_step=32, overlap_frames=8,
        mask_extension="average",
    )
    wave = _noise(3000, seed=9)
    stems = Separator(model).separate(wave, sample_rate=RATE)
    total = sum(stems.values())
    np.testing.assert_allclose(total, wave, atol=1e-4)


def test_mono_and_many_channels(model):
    wave = _noise(2000, channels=1)
    stems = Separator(model).separate(wave[:, 0], sample_rate=RATE)
    expected = _graph(model, np.repeat(wave, 2, axis=1), model.overlap_frames)
    np.testing.assert_allclose(stems["vocals"], expected["vocals"], atol=1e-5)
    wide = np.concatenate([_noise(2000), _noise(2000, seed=5)], axis=1)
    with pytest.warns(UserWarning, match=r"<array>: 4 channels; separating the first 2"):
        stems = Separator(model).separate(wide, sample_rate=RATE)
    expected = _graph(model, wide[:, :2], model.overlap_frames)
    np.testing.assert_allclose(stems["vocals"], expected["vocals"], atol=1e-5)


def test_silence_gives_silence(model):
    stems = Separator(model).separate(np.zeros((3000, 2), np.float32), sample_rate=RATE)
    for value in stems.values():
        np.testing.assert_array_equal(value, 0.0)


@pytest.mark.parametrize("rate", [4000, 16000])
def test_other_sample_rates_come_back_at_their_rate(model, rate):
    wave = _noise(int(0.8 * rate), seed=rate)
    stems = Separator(model).separate(wave, sample_rate=rate)
    reference = _graph(model, audio.resample(wave, rate, RATE), model.overlap_frames)
    for name in model.instruments:
        out = stems[name]
        assert len(out) == len(wave)
        back = audio.resample(reference[name], RATE, rate)[: len(out)]
        # Streaming and whole-array resampling agree away from the edges.
        middle = slice(200, len(back) - 200)
        np.testing.assert_allclose(out[middle], back[middle], atol=2e-3)


def test_resampled_outputs_keep_the_input_length_exactly(model, tmp_path):
    """Resampling there and back rounds twice; the stems still have the
    input's length, in memory, streamed in uneven blocks (some empty), and
    file to file."""
    sep = Separator(model, batch_size=1)
    for rate in (4000, 11025, 48000):
        for n in (1, 7, 999, 20001):
            wave = _noise(n, seed=n)
            assert {len(v) for v in sep.separate(wave, sample_rate=rate).values()} == {n}, (rate, n)
    wave = _noise(20001, seed=4)
    whole = sep.separate(wave, sample_rate=11025)
    blocks = np.split(wave, [0, 5, 5, 4000, 4001, 12000]) + [wave[:0]]
    streamed = list(sep.stream(blocks, 11025))
    for name in model.instruments:
        joined = np.concatenate([out[name] for out in streamed])
        np.testing.assert_allclose(joined, whole[name], atol=1e-6)
    sf.write(tmp_path / "odd.wav", wave, 11025, subtype="FLOAT")
    targets = sep.separate_to_file(tmp_path / "odd.wav", tmp_path / "out")
    for name, path in targets.items():
        written, rate = sf.read(path, dtype="float32")
        assert rate == 11025
        np.testing.assert_allclose(written, whole[name], atol=1e-6)


def test_channels_first_array_is_an_error(model):
    with pytest.raises(audio.AudioError, match=r"looks like \(channels, samples\).*waveform\.T"):
        Separator(model).separate(_noise(3000).T)


def test_nan_input_is_an_error(model):
    wave = _noise(100)
    wave[50, 1] = np.nan
    with pytest.raises(audio.AudioError, match="NaN"):
        Separator(model).separate(wave)


def test_separate_to_file_streams_and_names_outputs(model, tmp_path):
    wave = _noise(5000)
    sf.write(tmp_path / "song.wav", wave, RATE, subtype="FLOAT")
    sep = Separator(model)
    targets = sep.separate_to_file(tmp_path / "song.wav", tmp_path / "out", codec="wav")
    expected = sep.separate(wave, sample_rate=RATE)
    for name, path in targets.items():
        assert path == os.path.join(tmp_path / "out", "song", f"{name}.wav")
        data, rate = sf.read(path, dtype="float32")
        assert rate == RATE
        np.testing.assert_allclose(data, expected[name], atol=1e-6)
    with pytest.raises(FileExistsError):
        sep.separate_to_file(tmp_path / "song.wav", tmp_path / "out")


def test_m4a_separates_all_it_decodes(model, tmp_path):
    """An AAC file (PyAV) decodes to more samples than its stated duration
    (codec priming and padding): the outputs grow to hold all of them, in
    memory and file to file, and equal the separation of the decoded array."""
    pytest.importorskip("av")
    from pyav_files import encode

    path = tmp_path / "song.m4a"
    encode(path, _noise(6000, seed=21) * 0.5, RATE, "aac", "fltp")
    decoded, rate = audio.load(path)
    assert rate == RATE and len(decoded) > audio.AudioReader(path).frames
    sep = Separator(model)
    expected = sep.separate(decoded, sample_rate=RATE)
    from_file = sep.separate(path)
    targets = sep.separate_to_file(path, tmp_path / "out")
    for name in model.instruments:
        assert from_file[name].shape == decoded.shape
        np.testing.assert_allclose(from_file[name], expected[name], atol=1e-6)
        written, written_rate = sf.read(targets[name], dtype="float32")
        assert written_rate == RATE
        np.testing.assert_allclose(written, expected[name], atol=1e-6)


def test_bad_file_leaves_no_output(model, tmp_path):
    bad = tmp_path / "bad.mp3"
    bad.write_bytes(b"ID3" + b"\x00" * 50)
    with pytest.raises(audio.AudioError, match="bad.mp3"):
        Separator(model).separate_to_file(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.wav"))


def test_mixed_precision_keeps_stft_masks_and_outputs_float32(model):
    import keras

    wave = _noise(3000, seed=4)
    reference = _graph(model, wave, model.overlap_frames)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        mixed = tiny_model()
        mixed.spectrogram_model.set_weights(model.spectrogram_model.get_weights())
        assert mixed.spectrogram_model.get_layer("vocals_encoder_0").compute_dtype == "float16"
        out = mixed(wave[None])
    finally:
        keras.config.set_dtype_policy("float32")
    for name in model.instruments:
        assert out[name].dtype == "float32"
        scale = np.abs(reference[name]).max()
        np.testing.assert_allclose(np.asarray(out[name][0]), reference[name], atol=2e-2 * scale)


def test_file_to_file_runs_one_chunk_per_call_unless_told(model, tmp_path, monkeypatch):
    """batch_size=None batches arrays but streams files one chunk per call
    (flat memory from the shortest file up); an explicit size holds for both."""
    from keras_sep import audio

    from keras_sep.separation import pipelines

    monkeypatch.setattr(pipelines.Pipelines, "tuned_batch_size", lambda self: 4)  # as timing might choose

    wave = _noise(9001, seed=8)
    path = str(tmp_path / "song.wav")
    audio.save(path, wave, RATE)
    for given, expected in ((None, {1}), (3, {3})):
        sep = Separator(model, batch_size=given)
        batches = []
        pipeline = sep._pipelines.pipeline

        def recording(batch, pipeline=pipeline):
            batches.append(batch)
            return pipeline(batch)

        sep._pipelines.pipeline = recording
        targets = sep.separate_to_file(path, str(tmp_path / f"out{given}"))
        assert set(batches) == expected
        assert sep.batch_size == (given or 4)  # what arrays get
        whole = _graph(model, audio.load(path)[0], sep.overlap_frames)
        for name, target in targets.items():
            np.testing.assert_allclose(audio.load(target)[0], whole[name], atol=1e-4)


@pytest.mark.parametrize("flags, warns", [({"sse2", "avx2", "fma"}, True), ({"avx2", "avx512_bf16"}, False), ({"amx_bf16"}, False)])
def test_bfloat16_warns_where_the_processor_has_no_bfloat16_units(model, monkeypatch, flags, warns):
    import warnings

    from keras_sep.inference import autotune

    monkeypatch.setattr(autotune, "cpu_flags", lambda: flags)
    monkeypatch.setattr(autotune.tf.config, "list_logical_devices", lambda kind=None: [])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Separator(model, precision="bfloat16")
    slow = [w for w in caught if issubclass(w.category, RuntimeWarning) and "slower than float32" in str(w.message)]
    assert len(slow) == (1 if warns else 0)


def test_cpu_flags_are_read_where_linux_tells_them():
    from keras_sep.inference import autotune

    flags = autotune.cpu_flags()
    if os.path.exists("/proc/cpuinfo"):
        assert flags and ({"fpu", "sse2"} <= flags or "fp" in flags)
    assert autotune.has_bfloat16_units() in (True, False, None)


# --- the parts under the facade -------------------------------------------


def _identity_run(geometry, overlap):
    """A chunk computation that gives the input back through the engine's
    overlap-add: each chunk keeps the samples up to the next chunk's start
    (the last chunk, told by its weights not fading out, keeps all), so
    every input sample comes from exactly one chunk. "double" is twice that."""
    hop = geometry.chunk_hop(overlap) * geometry.frame_step
    calls = []

    def run(segments, weights):
        calls.append(len(segments))
        out = np.zeros_like(segments)
        for row in range(len(segments)):
            keep = len(segments[row]) if weights[row, -1] == 1.0 else hop
            out[row, :keep] = segments[row, :keep]
        return {geometry.instruments[0]: out, geometry.instruments[1]: 2 * out}

    return run, calls


@pytest.mark.parametrize("length", [1, 767, 3000, 9001])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_engine_runs_an_injected_computation_without_a_separator(model, length, batch_size):
    from keras_sep.separation.engine import ChunkStream

    overlap = model.overlap_frames
    wave = _noise(length, seed=length)
    for size in (1, 500, 1 << 20):
        run, calls = _identity_run(model, overlap)
        engine = ChunkStream(model, overlap, batch_size, run)
        parts = [engine.push(wave[i : i + size]) for i in range(0, length, size)] + [engine.push(None, final=True)]
        first, second = model.instruments
        np.testing.assert_array_equal(np.concatenate([p[first] for p in parts]), wave)
        np.testing.assert_array_equal(np.concatenate([p[second] for p in parts]), 2 * wave)
        assert sum(calls) == model.num_chunks(length, overlap)
        assert all(count == batch_size for count in calls[:-1])


def test_statistics_stream_sums_what_run_returns(model):
    from keras_sep.separation.engine import StatisticsStream

    overlap = model.overlap_frames
    wave = _noise(9001, seed=2)
    wave[4321, 1] = 0.75  # the loudest sample

    def run(segments, weights):
        return np.full(3, len(segments), np.complex64), weights.sum(axis=0), np.abs(segments).max()

    stream = StatisticsStream(model, overlap, 2, run)
    for i in range(0, len(wave), 1000):
        assert all(len(v) == 0 for v in stream.push(wave[i : i + 1000]).values())  # statistics only
    stream.push(None, final=True)
    total = model.num_chunks(len(wave), overlap)
    np.testing.assert_array_equal(stream.covariance, np.full(3, total))
    assert stream.covariance.dtype == np.complex128 and stream.power.dtype == np.float64
    weights = np.asarray(model.chunk_weights(np.arange(total), total, overlap))
    np.testing.assert_allclose(stream.power, weights.sum(axis=0), rtol=1e-6)
    assert stream.peak == pytest.approx(0.75)


def test_separator_takes_a_model_and_from_preset_takes_names_and_paths(model, tmp_path):
    with pytest.raises(TypeError, match=r"got the path or preset name 'spleeter:2stems': use Separator\.from_preset"):
        Separator("spleeter:2stems")
    path = tmp_path / "tiny.keras"
    model.save(path)
    with pytest.raises(TypeError, match="from_preset"):
        Separator(path)
    loaded = Separator.from_preset(path, chunking="spleeter", batch_size=2)
    assert loaded.chunking == "spleeter" and loaded.batch_size == 2
    wave = _noise(3000, seed=6)
    expected = Separator(model, chunking="spleeter").separate(wave, sample_rate=RATE)
    stems = loaded.separate(wave, sample_rate=RATE)
    for name in model.instruments:
        np.testing.assert_allclose(stems[name], expected[name], atol=1e-6)
    with pytest.raises(ValueError, match=r"missing\.keras: no such model file \(or preset\)"):
        Separator.from_preset(tmp_path / "missing.keras")


def test_keras_sep_separator_is_the_separation_one():
    import keras_sep
    from keras_sep import separation

    assert keras_sep.Separator is separation.Separator is Separator
    assert separation.CHUNKING_MODES == ("overlap", "spleeter") and separation.PRECISIONS == ("float32", "bfloat16")
    assert separation.BATCH_CANDIDATES == (1, 4)


def test_a_failure_while_separating_to_files_leaves_no_files_or_folders(model, tmp_path):
    wave = _noise(5000, seed=13)
    sf.write(tmp_path / "song.wav", wave, RATE, subtype="FLOAT")
    sep = Separator(model, batch_size=1)
    calls = []

    def failing(batch):
        def run(segments, weights):
            calls.append(batch)
            if len(calls) == 3:  # after the first stems' blocks went to the files
                raise RuntimeError("out of memory")
            return {n: np.zeros_like(segments) for n in model.instruments}
        return run

    sep._pipelines.pipeline = failing
    with pytest.raises(RuntimeError, match="out of memory"):
        sep.separate_to_file(tmp_path / "song.wav", tmp_path / "out" / "deep")
    assert len(calls) == 3
    assert not (tmp_path / "out").exists()


def test_a_stem_that_cannot_be_finished_takes_the_others_with_it(model, tmp_path, monkeypatch):
    """Finishing a file can fail after the block (a full disk): whichever
    stem it is, none of them is left in place, and no folder made for them."""
    wave = _noise(3000, seed=14)
    sf.write(tmp_path / "song.wav", wave, RATE, subtype="FLOAT")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    real = audio.AtomicWriter.__exit__
    for broken in model.instruments:

        def exit_(self, kind, error, trace, broken=broken):
            if kind is None and os.path.basename(self.path) == f"{broken}.wav":
                real(self, OSError, OSError("disk full"), None)  # removes its temporary file
                raise audio.AudioError(f"{self.path}: cannot write wav (disk full)")
            return real(self, kind, error, trace)

        monkeypatch.setattr(audio.AtomicWriter, "__exit__", exit_)
        with pytest.raises(audio.AudioError, match="disk full"):
            Separator(model).separate_to_file(tmp_path / "song.wav", tmp_path / "out", filename_format="a/b/{instrument}.wav")
        assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["keep.txt"], broken
    monkeypatch.setattr(audio.AtomicWriter, "__exit__", real)
    targets = Separator(model).separate_to_file(tmp_path / "song.wav", tmp_path / "out", filename_format="a/b/{instrument}.wav")
    assert all(os.path.isfile(t) for t in targets.values())


def test_default_overlap_is_an_eighth_of_the_chunk():
    """Spleeter's 512-frame chunks keep their 64 shared frames; a small
    network gets a default it can take instead of a refusal of 64."""
    small = WaveformSeparator(UNetSeparator(filters=(4, 8), bins=16, frames=16), frame_length=64, frame_step=16)
    assert small.overlap_frames == 2
    assert WaveformSeparator(UNetSeparator(filters=(4, 8), bins=16, frames=512), frame_length=64,
                             frame_step=16).overlap_frames == 64
    assert WaveformSeparator.from_config(small.get_config()).overlap_frames == 2
