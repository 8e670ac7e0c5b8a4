"""AnomalyDetector: thresholds from normal data, scores, and its ROC-AUC helper."""
import keras
import numpy as np
import pytest

from keras_sep.models import AnomalyDetector, dense_autoencoder
from keras_sep.models.anomaly_detector import precision_recall, roc_auc

WINDOW = 64


def tone_windows(n, rng, anomalous=False):
    """Windows of a steady tone with random phase; anomalies get a click."""
    t = np.arange(WINDOW)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    x = 0.5 + 0.4 * np.sin(2 * np.pi * t / 16 + phase) + 0.01 * rng.normal(size=(n, WINDOW))
    if anomalous:
        where = rng.integers(4, WINDOW - 4, n)
        for row, centre in zip(x, where):
            row[centre - 2 : centre + 2] = rng.choice([0.0, 1.0])
    return x.astype("float32")


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    normal = tone_windows(512, rng)
    model = dense_autoencoder(WINDOW, hidden=(32,), code_dim=4, activation="elu")
    model.compile(keras.optimizers.Adam(3e-3), "mse")
    detector = AnomalyDetector(model, threshold="percentile", q=99.0)
    detector.fit(normal, epochs=40, batch_size=32, verbose=0)
    return detector, normal


def test_flags_injected_clicks(trained):
    detector, _ = trained
    rng = np.random.default_rng(1)
    x = np.concatenate([tone_windows(200, rng), tone_windows(50, rng, anomalous=True)])
    labels = np.r_[np.zeros(200), np.ones(50)].astype(bool)
    scores = detector.score(x)
    assert scores.shape == (250,)
    result = detector.evaluate(x, labels)
    assert result["auc"] > 0.95, result
    assert result["recall"] > 0.8 and result["precision"] > 0.8, result
    predicted = detector.predict(x)
    assert predicted.dtype == bool and predicted.shape == (250,)
    # Scores are the per-example mean squared reconstruction errors.
    expected = np.mean((np.asarray(detector.autoencoder(x)) - x) ** 2, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)


def test_threshold_rules(trained):
    detector, normal = trained
    scores = detector.train_scores_
    assert detector.threshold_ == pytest.approx(np.percentile(scores, 99.0))
    assert 0.005 <= np.mean(detector.predict(normal)) <= 0.015  # ~1 - q / 100
    mean_std = AnomalyDetector(detector.autoencoder, threshold="mean_std", k=2.0)
    mean_std.fit(normal, train=False)
    assert mean_std.threshold_ == pytest.approx(scores.mean() + 2.0 * scores.std(), rel=1e-5)
    fixed = AnomalyDetector(detector.autoencoder, threshold=0.5).fit(normal, train=False)
    assert fixed.threshold_ == 0.5 and not fixed.predict(normal).any()
    median = AnomalyDetector(detector.autoencoder, q=50.0).fit(normal, train=False)
    np.testing.assert_allclose(np.mean(median.predict(normal)), 0.5, atol=0.01)


def test_arguments_are_checked():
    model = dense_autoencoder(8, hidden=(), code_dim=2)
    with pytest.raises(ValueError, match="threshold"):
        AnomalyDetector(model, threshold="max")
    with pytest.raises(ValueError, match="q"):
        AnomalyDetector(model, q=120)
    with pytest.raises(ValueError, match="keras.Model"):
        AnomalyDetector(lambda x: x)
    with pytest.raises(ValueError, match="fit"):
        AnomalyDetector(model).predict(np.zeros((2, 8), "float32"))


def auc_by_pairs(labels, scores):
    """Reference: the share of (positive, negative) pairs ranked right, ties 1/2."""
    pos, neg = scores[labels], scores[~labels]
    diff = pos[:, None] - neg[None, :]
    return np.mean((diff > 0) + 0.5 * (diff == 0))


def test_roc_auc_against_pairwise_reference_and_sklearn():
    rng = np.random.default_rng(2)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=300) + labels, 1)  # rounded: many ties
    np.testing.assert_allclose(roc_auc(labels, scores), auc_by_pairs(labels, scores), rtol=1e-12)
    metrics = pytest.importorskip("sklearn.metrics")
    np.testing.assert_allclose(roc_auc(labels, scores), metrics.roc_auc_score(labels, scores))
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="positive"):
        roc_auc([0, 0], [0.1, 0.2])


def test_precision_recall():
    labels = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    predicted = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    assert precision_recall(labels, predicted) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert precision_recall(labels, np.zeros(8, bool)) == (0.0, 0.0)


def test_works_with_image_autoencoders():
    from keras_sep.models import conv_autoencoder

    keras.utils.set_random_seed(3)
    x = np.random.default_rng(3).random((16, 8, 8, 1)).astype("float32") * 0.1
    detector = AnomalyDetector(conv_autoencoder((8, 8, 1), filters=(4,)), threshold="mean_std")
    detector.fit(x, epochs=1, verbose=0)
    assert detector.score(x).shape == (16,) and np.isfinite(detector.threshold_)
