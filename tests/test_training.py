"""Losses, fit_separator, resume after a kill, and two-worker training."""
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_sep import losses, training
from train_worker import build, examples

WORKER = os.path.join(os.path.dirname(__file__), "train_worker.py")


def test_spectral_l1_and_mse_match_numpy():
    rng = np.random.default_rng(0)
    y_true = rng.uniform(size=(3, 8, 4, 2)).astype(np.float32)
    y_pred = rng.uniform(size=(3, 8, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(losses.SpectralL1()(y_true, y_pred), np.abs(y_true - y_pred).mean(), rtol=1e-6)
    np.testing.assert_allclose(losses.SpectralMSE()(y_true, y_pred), ((y_true - y_pred) ** 2).mean(), rtol=1e-6)
    per_example = losses.SpectralL1(reduction="none")(y_true, y_pred)
    np.testing.assert_allclose(per_example, np.abs(y_true - y_pred).mean(axis=(1, 2, 3)), rtol=1e-6)
    # float16 predictions are compared in float32.
    assert losses.SpectralL1()(y_true, tf.cast(y_pred, "float16")).dtype == "float32"


def _np_stft_magnitude(x, n_fft, hop):
    """Centred, zero-padded, periodic-Hann STFT magnitude: (batch, frames, bins, channels)."""
    x = np.pad(x, ((0, 0), (n_fft // 2, n_fft // 2), (0, 0)))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = 1 + (x.shape[1] - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    segments = x[:, index, :] * window[None, None, :, None]
    return np.abs(np.fft.rfft(segments, axis=2))


def test_multi_resolution_stft_loss_matches_numpy():
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=(2, 2000, 2)).astype(np.float32)
    y_pred = (y_true + 0.3 * rng.normal(size=y_true.shape)).astype(np.float32)
    loss = losses.MultiResolutionSTFTLoss(resolutions=[(256, 64), (128, 32)], reduction="none")
    expected = 0
    for n_fft, hop in [(256, 64), (128, 32)]:
        s, p = _np_stft_magnitude(y_true, n_fft, hop), _np_stft_magnitude(y_pred, n_fft, hop)
        convergence = np.sqrt(((s - p) ** 2).sum((1, 2, 3)) + 1e-7) / np.sqrt((s**2).sum((1, 2, 3)) + 1e-7)
        log_l1 = np.abs(np.log(s + 1e-7) - np.log(p + 1e-7)).mean((1, 2, 3))
        expected = expected + convergence + log_l1
    np.testing.assert_allclose(loss(y_true, y_pred), expected / 2, rtol=1e-4)
    np.testing.assert_allclose(loss(y_true, y_true), 0.0, atol=1e-3)
    config = loss.get_config()
    assert losses.MultiResolutionSTFTLoss.from_config(config).resolutions == ((256, 64), (128, 32))


def test_fit_separator_learns_and_writes_its_files(tmp_path):
    mixture, targets = examples()
    ds = tf.data.Dataset.from_tensor_slices((mixture, targets)).batch(4)
    model, history = training.fit_separator(
        build, ds, val_ds=ds, epochs=6, learning_rate=1e-2, output_dir=str(tmp_path),
        precision="float32", strategy="default", config={"dataset": "synthetic"}, verbose=0,
    )
    assert history["loss"][-1] < 0.7 * history["loss"][0]
    saved = json.load(open(tmp_path / "config.json"))
    assert saved["dataset"] == "synthetic" and saved["precision"] == "float32"
    loaded = keras.saving.load_model(tmp_path / "final.keras")
    np.testing.assert_allclose(loaded.predict(mixture, verbose=0)["vocals"],
                               model.predict(mixture, verbose=0)["vocals"], atol=1e-6)
    assert (tmp_path / "best.keras").exists() and (tmp_path / "logs").exists()


def test_mixed_bfloat16_trains_with_float32_losses():
    mixture, targets = examples()
    ds = tf.data.Dataset.from_tensor_slices((mixture, targets)).batch(4)
    try:
        model, history = training.fit_separator(
            build, ds, epochs=2, precision="mixed_bfloat16", strategy="default", verbose=0,
        )
        assert model.get_layer("vocals_encoder_0").compute_dtype == "bfloat16"
        assert all(w.dtype == "float32" for w in model.weights)
        assert np.all(np.isfinite(history["loss"]))
    finally:
        keras.config.set_dtype_policy("float32")


def test_batch_norm_inference_mode_and_encoder_freezing():
    model = build()
    # Per U-Net: one encoder BN (the last stage has none) and two decoder BNs.
    assert training.inference_mode_batch_norm(model) == 2 * (1 + 2)
    assert training.freeze_encoder(model) == 4
    trainable = {w.path for w in model.trainable_weights}
    assert not any("_encoder_" in p or "batch_norm" in p for p in trainable)
    assert any("decoder_0/conv" in p for p in trainable)
    # A non-trainable BN uses its moving statistics even with training=True.
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 2)).astype(np.float32)
    np.testing.assert_allclose(model(x, training=True)["vocals"], model(x, training=False)["vocals"], atol=1e-6)


def _run(args, env=None):
    return subprocess.run([sys.executable, WORKER] + args, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_killed_run_resumes_from_backup(tmp_path):
    straight = _run([str(tmp_path / "a"), str(tmp_path / "a.npz")])
    assert straight.returncode == 0, straight.stderr[-2000:]
    killed = _run([str(tmp_path / "b"), str(tmp_path / "b.npz"), "--crash-at-epoch", "2"])
    assert killed.returncode == 3 and not (tmp_path / "b.npz").exists()
    resumed = _run([str(tmp_path / "b"), str(tmp_path / "b.npz"), "--crash-at-epoch", "2"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    # The resumed run only trained epochs 2 and 3, and ends where the straight one did.
    np.testing.assert_allclose(b["loss"], a["loss"][2:], rtol=1e-6)
    for key in a.files:
        if key != "loss":
            np.testing.assert_allclose(b[key], a[key], atol=1e-6)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_end_with_identical_weights(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, str(tmp_path / f"w{index}"), str(tmp_path / f"w{index}.npz"),
             "--strategy", "multi_worker", "--epochs", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        ))
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    w0, w1 = np.load(tmp_path / "w0.npz"), np.load(tmp_path / "w1.npz")
    init = [np.asarray(w) for w in build().weights]
    moved = 0.0
    for i, key in enumerate(k for k in w0.files if k != "loss"):
        np.testing.assert_array_equal(w0[key], w1[key])
        moved = max(moved, float(np.abs(w0[key] - init[i]).max()))
    assert moved > 1e-3  # the workers trained, together
    assert w0["loss"][-1] < w0["loss"][0]
    assert (tmp_path / "w0" / "final.keras").exists() and not (tmp_path / "w1" / "final.keras").exists()


def test_rebuilding_for_another_precision_keeps_frozen_layers_frozen():
    model = build()
    training.inference_mode_batch_norm(model)
    training.freeze_encoder(model)
    expected = {w.path for w in model.trainable_weights}
    try:
        keras.config.set_dtype_policy("mixed_bfloat16")
        clone = training._in_scope(model, tf.distribute.get_strategy(), "mixed_bfloat16")
    finally:
        keras.config.set_dtype_policy("float32")
    assert clone is not model and clone.dtype_policy.name == "mixed_bfloat16"
    assert {w.path for w in clone.trainable_weights} == expected
    for a, b in zip(model.weights, clone.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _waveform_model():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((64, 1), name="mixture")
    vocals = keras.layers.Dense(1, name="vocals")(inputs)
    return keras.Model(inputs, {"vocals": vocals})


@pytest.mark.parametrize(
    "loss",
    [
        keras.losses.Huber(delta=0.3),
        keras.losses.MeanAbsoluteError(reduction="sum"),
        losses.MultiResolutionSTFTLoss(resolutions=[(32, 8)], epsilon=1e-2),
    ],
    ids=["huber_delta", "mae_sum", "stft_resolutions"],
)
def test_distributed_loop_keeps_the_loss_instance_settings(loss):
    from keras_sep._distributed import distributed_fit

    rng = np.random.default_rng(2)
    mixture = rng.normal(size=(4, 64, 1)).astype(np.float32)
    target = (0.5 * mixture + rng.normal(scale=0.5, size=mixture.shape)).astype(np.float32)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _waveform_model()
    # The instance's own value on the batch, before the (zero-rate) step.
    expected = float(loss(target, model(mixture)["vocals"]))
    ds = tf.data.Dataset.from_tensor_slices((mixture, {"vocals": target})).batch(4).repeat()
    history = distributed_fit(
        model, strategy, ds, epochs=1, steps_per_epoch=1, learning_rate=0.0, loss=loss, verbose=0
    )
    np.testing.assert_allclose(history["loss"][0], expected, rtol=1e-5)


def test_distributed_loop_refuses_unreduced_losses():
    from keras_sep._distributed import replica_loss

    with pytest.raises(ValueError, match="reduction=None"):
        replica_loss(keras.losses.Huber(reduction=None), 1)


def test_distributed_early_stopping_is_logged(caplog):
    from keras_sep._distributed import distributed_fit

    mixture = np.ones((4, 64, 1), np.float32)
    ds = tf.data.Dataset.from_tensor_slices((mixture, {"vocals": mixture})).batch(4).repeat()
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _waveform_model()
    with caplog.at_level("INFO", logger="keras_sep._distributed"):
        history = distributed_fit(
            model, strategy, ds, epochs=5, steps_per_epoch=1,
            learning_rate=0.0, loss=keras.losses.MeanSquaredError(), patience=1, verbose=0,
        )
    # With a zero learning rate the loss never improves after epoch 1.
    assert len(history["loss"]) == 2
    assert "early stopping after epoch 2" in caplog.text
