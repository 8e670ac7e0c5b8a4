"""Training OpenUnmix with the tf.data pipeline and fit_separator."""
import numpy as np
import pytest
import tensorflow as tf

from keras_sep import data, training
from keras_sep.models import open_unmix

STFT = dict(frame_length=256, frame_step=64, bins=129, frames=16)


def test_input_statistics_match_numpy():
    rng = np.random.default_rng(3)
    magnitudes = rng.gamma(2.0, 1.0, (10, 7, 12, 2)).astype("float32")
    magnitudes[..., 5, :] = 2.0  # a constant bin: its std is floored
    pairs = tf.data.Dataset.from_tensor_slices((magnitudes, {"vocals": magnitudes})).batch(3)
    mean, std = training.input_statistics(pairs)
    frames = magnitudes.astype("float64").mean(axis=-1).reshape(-1, 12)
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-10)
    expected = frames.std(axis=0)
    expected[5] = 1e-4 * expected.max()
    np.testing.assert_allclose(std, expected, rtol=1e-8)
    # max_batches reads only the first elements.
    first, _ = training.input_statistics(pairs, max_batches=1)
    np.testing.assert_allclose(first, magnitudes[:3].mean(axis=-1).reshape(-1, 12).mean(axis=0), rtol=1e-6)
    with pytest.raises(ValueError, match="no frames"):
        training.input_statistics(pairs.take(0))


def _stems(examples=8, seed=0):
    """Waveform examples whose drums are 0.7 and vocals 0.3 of the mixture."""
    rng = np.random.default_rng(seed)
    samples = (STFT["frames"] - 1) * STFT["frame_step"] + STFT["frame_length"]
    mixture = rng.standard_normal((examples, samples, 2)).astype("float32")
    return tf.data.Dataset.from_tensor_slices(
        {"mixture": mixture, "drums": 0.7 * mixture, "vocals": 0.3 * mixture})


def _pairs(stems, batch_size=4):
    return data.to_spectrogram_pairs(data.batch(stems, batch_size), instruments=("drums", "vocals"), **STFT)


@pytest.mark.slow
def test_fit_separator_trains_the_models_own_target():
    stems = _stems()
    mean, std = training.input_statistics(_pairs(stems).take(2))
    model = open_unmix("drums", nb_bins=STFT["bins"], hidden_size=8, max_bin=100,
                       input_mean=mean, input_scale=std)
    np.testing.assert_allclose(model.get_layer("input_norm").scale.numpy(), 1 / std[:100], rtol=1e-6)
    model, history = training.fit_separator(
        model, _pairs(stems), _pairs(stems), epochs=20, steps_per_epoch=2, validation_steps=1,
        learning_rate=3e-2, loss="mse", verbose=0)
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    # The loss is Open-Unmix's MSE on the drums magnitude, not the vocals'.
    x, targets = next(iter(_pairs(stems)))
    estimate = model(x, training=False).numpy()
    drums_error = np.mean((estimate - targets["drums"].numpy()) ** 2)
    vocals_error = np.mean((estimate - targets["vocals"].numpy()) ** 2)
    assert drums_error < 0.5 * vocals_error


def test_a_target_missing_from_the_data_is_named():
    model = open_unmix("bass", nb_bins=STFT["bins"], hidden_size=8)
    with pytest.raises(ValueError, match=r"the targets hold \['drums', 'vocals'\], not the model's output 'bass'"):
        training.fit_separator(model, _pairs(_stems()), epochs=1, steps_per_epoch=1, verbose=0)
