"""The Open-Unmix inference plan: the Keras networks' function, faster."""
import numpy as np
import pytest

from keras_sep.inference import probes
from keras_sep.inference.open_unmix import OpenUnmixInference, _spans
from keras_sep.models import OpenUnmix, OpenUnmixSeparator
from keras_sep.separation import Separator

TARGETS = ("vocals", "drums", "bass")


def _networks(unidirectional=False, nb_layers=2, targets=TARGETS, seed=0):
    """Small networks whose every weight (batch-norm statistics, input and
    output scaling included) is random, so that no folded term is trivial."""
    rng = np.random.default_rng(seed)
    nets = [OpenUnmix(nb_bins=17, hidden_size=8, max_bin=11, nb_layers=nb_layers, unidirectional=unidirectional,
                      target=t) for t in targets]
    for net in nets:
        for weight in net.weights:
            noise = rng.normal(0.0, 0.4, weight.shape).astype("float32")
            weight.assign(np.abs(noise) + 0.5 if "variance" in weight.path else weight.numpy() + noise)
    return nets


def _max_relative_error(reference, got):
    return float(np.abs(got - reference).max() / np.abs(reference).max())


@pytest.mark.parametrize("unidirectional", [False, True])
@pytest.mark.parametrize("nb_layers", [1, 3])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_plan_gives_every_network_output(unidirectional, nb_layers, jit_compile):
    nets = _networks(unidirectional, nb_layers)
    x = np.random.default_rng(1).uniform(0, 2, (2, 23, 17, 2)).astype("float32")
    got = OpenUnmixInference(nets, jit_compile=jit_compile)(x).numpy()
    assert got.shape == (2, 23, 17, 2, len(nets))
    for index, net in enumerate(nets):
        reference = np.asarray(net(x, training=False))
        assert _max_relative_error(reference, got[..., index]) < 1e-5


def test_one_unidirectional_network_and_odd_group_counts():
    # One group (one causal network) and five (odd): the loops' grouping.
    assert _spans(1) == [(0, 1)]
    assert _spans(5) == [(0, 2), (2, 5)]
    assert _spans(8) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    nets = _networks(unidirectional=True, targets=("bass",))
    x = np.random.default_rng(2).uniform(0, 1, (1, 9, 17, 2)).astype("float32")
    got = OpenUnmixInference(nets)(x).numpy()[..., 0]
    assert _max_relative_error(np.asarray(nets[0](x, training=False)), got) < 1e-5


def test_networks_of_different_shapes_are_refused():
    nets = [OpenUnmix(nb_bins=17, hidden_size=8, target="vocals"), OpenUnmix(nb_bins=17, hidden_size=4, target="bass")]
    with pytest.raises(ValueError, match="one shape"):
        OpenUnmixInference(nets)


def test_probe_check_catches_a_wrong_plan_and_is_remembered(tmp_path, monkeypatch):
    nets = _networks()
    plan = OpenUnmixInference(nets, check=False)
    plan.fc2_bias = plan.fc2_bias + 0.5  # a plan that no longer computes the networks
    with pytest.raises(ValueError, match="differs from the Keras network"):
        plan._check_probe(nets)

    monkeypatch.setenv("KERAS_SEP_CACHE", str(tmp_path))
    monkeypatch.setenv("KERAS_SEP_TUNE", "1")
    calls = []
    original = OpenUnmixInference._check_probe
    monkeypatch.setattr(OpenUnmixInference, "_check_probe", lambda self, m: calls.append(1) or original(self, m))
    OpenUnmixInference(nets)
    OpenUnmixInference(nets)
    assert len(calls) == 1  # the second plan read the passed check
    nets[0].get_layer("fc2").kernel.assign(nets[0].get_layer("fc2").kernel + 0.1)
    OpenUnmixInference(nets)
    assert len(calls) == 2  # other weights: another key, checked again
    assert len(list((tmp_path / "probes").glob("*.json"))) == 2


def test_probe_key_depends_on_the_plan_code():
    nets = _networks()
    holder = type("H", (), {"weights": nets[0].weights, "get_config": lambda self: {}})()
    assert probes.key(holder, code=("open_unmix",)) != probes.key(holder, code=("plan",))


@pytest.mark.parametrize("niter, bar", [(0, 100), (1, 60)])
def test_separator_streams_the_same_stems_with_and_without_the_plan(niter, bar):
    # The EM iterations amplify float32 rounding where one source dominates
    # a bin (see test_wiener_em): the filtered stems keep the 60 dB bar.
    nets = [OpenUnmix(nb_bins=65, hidden_size=8, max_bin=40, target=t) for t in ("vocals", "drums")]
    rng = np.random.default_rng(4)
    for net in nets:
        for weight in net.weights:
            if "variance" not in weight.path:
                weight.assign(weight.numpy() + rng.normal(0, 0.3, weight.shape).astype("float32"))
    model = OpenUnmixSeparator(nets, niter=niter, residual=True, n_fft=128, n_hop=32, sample_rate=8000, wiener_win_len=10,
                               chunk_frames=50, overlap_frames=10)
    wave = rng.normal(0, 0.3, (8000 * 2, 2)).astype("float32")
    fast = Separator(model, progress=False).separate(wave, sample_rate=8000)
    keras_layers = Separator(model, progress=False, fast=False).separate(wave, sample_rate=8000)
    for name in model.instruments:
        reference = keras_layers[name].astype("float64")
        snr = 10 * np.log10(np.sum(reference**2) / np.sum((fast[name] - reference) ** 2))
        assert snr > bar, (name, snr)
