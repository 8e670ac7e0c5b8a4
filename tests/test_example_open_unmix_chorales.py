"""examples/open_unmix_chorales.py: its configuration and its SDR table (the
training run itself takes minutes and is not a test)."""
import importlib.util
import os

import pytest

PATH = os.path.join(os.path.dirname(__file__), "..", "examples", "open_unmix_chorales.py")


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("open_unmix_chorales", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_config_is_umxhq_with_the_small_settings(example):
    args = example.parse_args(["--hidden-size", "16", "--frames", "32", "--epochs", "2", "--tracks", "4"])
    config = example.training_config(args)
    assert config["model"] == {"preset": "umxhq", "pretrained": False,
                               "overrides": {"hidden_size": 16, "signal": {"frames": 32}}}
    assert config["training"]["loss"] == "mse" and config["training"]["epochs"] == 2
    assert config["data"]["source"] == "bach" and config["data"]["tracks"] == 4

    from keras_sep.recipes import open_unmix

    model, signal, targets = open_unmix._open_unmix_settings(config["model"])
    assert (model["hidden_size"], model["max_bin"], signal["frames"]) == (16, 1487, 32)
    assert targets == list(example.TARGETS)


def test_sdr_table_rows_per_target_in_column_order(example):
    summary = {
        "mixture": {"vocals": {"SDR": -9.876}, "bass": {"SDR": -1.5}},
        "model": {"vocals": {"SDR": 2.345}, "bass": {"SDR": 4.0}},
        "oracle_irm": {"vocals": {"SDR": 12.0}, "bass": {"SDR": 10.004}},
    }
    lines = example.sdr_table({"summary": summary}).splitlines()
    assert lines[0] == "| target | mixture as estimate | Open-Unmix (trained here) | oracle IRM |"
    assert lines[2:] == ["| vocals | -9.88 | 2.35 | 12.00 |", "| bass | -1.50 | 4.00 | 10.00 |"]
