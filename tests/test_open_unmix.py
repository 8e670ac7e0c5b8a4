"""OpenUnmix: shapes, masking, cropping, causality, saving, mixed precision."""
import weakref

import keras
import numpy as np
import pytest

from keras_sep.models import OpenUnmix, bandwidth_to_max_bin, open_unmix

BINS, CHANNELS = 33, 2


def tiny(**kwargs):
    args = dict(nb_bins=BINS, nb_channels=CHANNELS, hidden_size=8, max_bin=20)
    args.update(kwargs)
    return OpenUnmix(**args)


def _magnitudes(batch=2, frames=7, seed=0):
    return np.random.default_rng(seed).uniform(0.0, 2.0, (batch, frames, BINS, CHANNELS)).astype("float32")


@pytest.mark.parametrize("rate, n_fft, bandwidth, expected", [
    (44100, 4096, 16000, 1487),   # umxhq / umxl
    (16000, 1024, 16000, 513),    # umxse: the whole band
    (44100, 4096, 0, 1),
])
def test_bandwidth_to_max_bin(rate, n_fft, bandwidth, expected):
    assert bandwidth_to_max_bin(rate, n_fft, bandwidth) == expected


def test_output_is_a_non_negative_mask_times_the_mixture():
    model = tiny()
    x = _magnitudes()
    y = model(x).numpy()
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.all(y >= 0)
    # Zero bins in the mixture stay zero whatever the mask.
    x[:, :, 5] = 0.0
    assert np.all(model(x).numpy()[:, :, 5] == 0.0)


def test_bins_above_max_bin_are_masked_but_not_seen():
    """The network sees only max_bin bins: scaling the mixture above them
    scales the output there by the same factor and leaves the rest alone."""
    model = tiny()
    x = _magnitudes()
    y = model(x).numpy()
    x2 = x.copy()
    x2[:, :, 20:] *= 3.0
    y2 = model(x2).numpy()
    np.testing.assert_allclose(y2[:, :, :20], y[:, :, :20], rtol=1e-6)
    np.testing.assert_allclose(y2[:, :, 20:], 3.0 * y[:, :, 20:], rtol=1e-5)


def test_input_statistics_set_the_normalisation():
    mean = np.linspace(0.1, 1.0, BINS)
    std = np.linspace(1.0, 2.0, BINS)
    model = tiny(input_mean=mean, input_scale=std)
    norm = model.get_layer("input_norm")
    np.testing.assert_allclose(norm.shift.numpy(), -mean[:20], rtol=1e-6)
    np.testing.assert_allclose(norm.scale.numpy(), 1.0 / std[:20], rtol=1e-6)


@pytest.mark.parametrize("unidirectional, causal", [(True, True), (False, False)])
def test_only_the_unidirectional_model_is_causal(unidirectional, causal):
    model = tiny(unidirectional=unidirectional)
    x = _magnitudes(frames=9)
    y = model(x).numpy()
    x[:, 6:] = np.flip(x[:, 6:], axis=2)
    y2 = model(x).numpy()
    assert np.allclose(y2[:, :6], y[:, :6], atol=1e-7) == causal


def test_layer_sizes_follow_upstream():
    bi = tiny(hidden_size=16, nb_layers=2)
    assert bi.get_layer("blstm_0").forward_layer.units == 8
    assert bi.get_layer("fc2").kernel.shape == (32, 16)
    assert bi.get_layer("fc1").kernel.shape == (20 * CHANNELS, 16)
    assert bi.get_layer("fc3").kernel.shape == (16, BINS * CHANNELS)
    assert bi.get_layer("lstm_dropout_1").rate == 0.4
    uni = tiny(hidden_size=16, unidirectional=True)
    assert uni.get_layer("lstm_2").units == 16
    assert uni.get_layer("fc2").kernel.shape == (32, 16)
    assert (bi.nb_bins, bi.max_bin, bi.nb_channels, bi.hidden_size, bi.target) == (BINS, 20, 2, 16, "vocals")


def test_keras_round_trip(tmp_path):
    model = open_unmix("drums", nb_bins=BINS, hidden_size=8, max_bin=20,
                       input_mean=np.full(BINS, 0.5), input_scale=np.full(BINS, 2.0))
    # Move every weight off its initial value so that the file must carry them.
    for weight in model.weights:
        weight.assign(weight.numpy() + np.random.default_rng(1).uniform(0.1, 0.2, weight.shape))
    x = _magnitudes()
    path = str(tmp_path / "umx.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, OpenUnmix) and loaded.target == "drums"
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-7)


def test_saved_model_serves_any_batch_and_length(tmp_path):
    import tensorflow as tf

    model = tiny()
    export_dir = str(tmp_path / "saved_model")
    model.export(export_dir, format="tf_saved_model", verbose=False)
    served = tf.saved_model.load(export_dir)
    for batch, frames in ((1, 5), (3, 11)):
        x = _magnitudes(batch=batch, frames=frames, seed=batch)
        np.testing.assert_allclose(served.serve(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_mixed_precision_keeps_the_mask_in_float32():
    keras.config.set_dtype_policy("mixed_float16")
    model = tiny()
    assert model.get_layer("fc1").compute_dtype == "float16"
    y = model(_magnitudes())
    assert y.dtype == "float32"
    assert np.all(np.isfinite(y.numpy()))


def test_one_training_step_moves_every_weight():
    model = tiny()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    before = [w.numpy().copy() for w in model.trainable_weights]
    x = _magnitudes()
    model.fit(x, 0.5 * x, epochs=1, batch_size=2, verbose=0)
    moved = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(moved)


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_bin=40), "max_bin"),
    (dict(hidden_size=7), "even hidden_size"),
    (dict(nb_layers=0), "nb_layers"),
    (dict(input_mean=np.zeros(5)), "input_mean"),
    (dict(input_scale=np.zeros(BINS)), "input_scale must be positive"),
    (dict(target="fc1"), "target must be a source name other than"),
    (dict(target="a/b"), "got .a/b."),
    (dict(target="lstm_1"), "lstm_\*, got .lstm_1."),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny(**kwargs)


def test_unknown_argument_is_a_type_error():
    with pytest.raises(TypeError, match="hiden_size"):
        OpenUnmix(hiden_size=8)


# --- upstream weights (scripts/make_openunmix_fixtures.py, openunmix 1.3.0) ---

import glob  # noqa: E402
import os  # noqa: E402

from keras_sep.checkpoints.open_unmix import (  # noqa: E402
    load_open_unmix_state_dict, open_unmix_config, open_unmix_from_pth)
from keras_sep.checkpoints.torch_pth import read_state_dict  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data")


def _fixture(*parts):
    (path,) = glob.glob(os.path.join(DATA, "openunmix", *parts))
    return path


@pytest.fixture(scope="module")
def reference():
    with np.load(os.path.join(DATA, "openunmix_random.npz")) as data:
        return {name: data[name] for name in data.files}


def snr_db(reference, estimate):
    return 10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2))


@pytest.mark.parametrize("fmt", ["zip", "legacy"])
def test_converted_weights_reproduce_pytorch(reference, fmt):
    model = open_unmix_from_pth(_fixture(fmt, "vocals-*.pth"))
    assert (model.target, model.nb_bins, model.max_bin, model.hidden_size) == ("vocals", 2049, 1487, 8)
    estimate = model(reference["net_input"], training=False).numpy()
    assert snr_db(reference["net_output_vocals"], estimate) > 60


def test_converted_causal_mono_model_reproduces_pytorch(reference):
    model = open_unmix_from_pth(_fixture("small", "speech-*.pth"))
    assert model.unidirectional and model.nb_channels == 1 and model.nb_layers == 2
    estimate = model(reference["small_input"], training=False).numpy()
    assert snr_db(reference["small_output"], estimate) > 60


def test_converted_model_survives_a_keras_round_trip(reference, tmp_path):
    model = open_unmix_from_pth(_fixture("zip", "vocals-*.pth"))
    path = str(tmp_path / "vocals.keras")
    model.save(path)
    estimate = keras.saving.load_model(path)(reference["net_input"], training=False).numpy()
    assert snr_db(reference["net_output_vocals"], estimate) > 60


def test_config_is_read_from_the_shapes():
    state = read_state_dict(_fixture("zip", "bass-*.pth"))
    assert open_unmix_config(state) == dict(nb_bins=2049, nb_channels=2, hidden_size=8, nb_layers=3,
                                            max_bin=1487, unidirectional=False)


def test_a_state_dict_of_other_sizes_is_refused():
    state = read_state_dict(_fixture("zip", "bass-*.pth"))
    with pytest.raises(ValueError, match="hidden_size': 8"):
        load_open_unmix_state_dict(OpenUnmix(hidden_size=16, max_bin=1487), state)
    del state["bn2.running_var"]
    with pytest.raises(ValueError, match="bn2.running_var"):
        load_open_unmix_state_dict(OpenUnmix(hidden_size=8, max_bin=1487, nb_layers=3), state)


def test_a_file_that_is_no_open_unmix_names_itself(tmp_path):
    with pytest.raises(ValueError, match=r"no\.pth: cannot read"):
        open_unmix_from_pth(tmp_path / "no.pth")


def test_converted_weights_under_mixed_precision(reference):
    keras.config.set_dtype_policy("mixed_float16")
    model = open_unmix_from_pth(_fixture("zip", "vocals-*.pth"))
    assert model.get_layer("fc3").compute_dtype == "float16"
    estimate = model(reference["net_input"], training=False).numpy()
    assert estimate.dtype == np.float32
    assert snr_db(reference["net_output_vocals"], estimate) > 40


def test_objects_keras_tracks_by_id_while_loading_live_as_long_as_the_network():
    # Keras matches objects by id() while a .keras file loads, and Bidirectional
    # serialises its template LSTM to copy it. A template freed and its id
    # taken by a later object made Keras hand back an earlier layer (a forward
    # LSTM as backward: "should have different `go_backwards`") on about one
    # load in ten of a file with four networks. No id can be reused while
    # every object recorded during the build is alive.
    import gc

    from keras.src.saving import serialization_lib

    recorded = []
    record = serialization_lib.record_object_after_serialization

    def recording(obj, config):
        recorded.append(weakref.ref(obj))
        return record(obj, config)

    serialization_lib.record_object_after_serialization = recording
    try:
        with serialization_lib.ObjectSharingScope():
            nets = [OpenUnmix(nb_bins=9, nb_channels=2, hidden_size=4, max_bin=6, target=t) for t in "ab"]
    finally:
        serialization_lib.record_object_after_serialization = record
    gc.collect()
    assert recorded  # the LSTMs, their initializers, dtype policies, ...
    assert all(ref() is not None for ref in recorded)
    for net in nets:
        for index in range(3):
            layer = net.get_layer(f"blstm_{index}")
            assert not layer.forward_layer.go_backwards and layer.backward_layer.go_backwards
