"""The docstring examples of the autoencoder / segmentation zoo run as written."""
import doctest
import importlib

import pytest

MODULES = (
    "keras_sep.ops.griffin_lim",
    "keras_sep.layers.griffin_lim",
    "keras_sep.layers.additive_gaussian_noise",
    "keras_sep.layers.masking_noise",
    "keras_sep.layers.salt_and_pepper_noise",
    "keras_sep.layers.cross_occlusion",
    "keras_sep.models.dense_autoencoder",
    "keras_sep.models.deep_autoencoder",
    "keras_sep.models.pca",
    "keras_sep.models.denoising_autoencoder",
    "keras_sep.models.anomaly_detector",
    "keras_sep.models.conv_autoencoder",
    "keras_sep.models.encoder_decoder",
    "keras_sep.models.unet",
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0, f"{name} has no example"
    assert result.failed == 0
