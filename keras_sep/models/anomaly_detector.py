"""Anomaly detection by reconstruction error of an autoencoder."""
import keras
import numpy as np

from keras_sep.models._autoencoder_utils import predict_numpy

THRESHOLDS = ("percentile", "mean_std")


class AnomalyDetector:
    """Flags inputs that an autoencoder trained on normal data reconstructs badly.

    Train the autoencoder on normal examples only; it learns to reconstruct
    them, and an anomalous input is pulled towards the normal data it knows,
    so its reconstruction error ``score(x) = mean((x − x̂)²)`` over all but
    the batch axis is large. ``fit`` sets the threshold from the errors of
    the training examples:

    - ``threshold="percentile"``: the ``q``-th percentile of the training
      errors, i.e. a false-alarm rate of about ``1 − q / 100`` on normal data;
    - ``threshold="mean_std"``: ``mean + k · std`` of the training errors;
    - a number: that fixed threshold.

    Works with any Keras autoencoder whose output has the input's shape
    (dense, convolutional, denoising) and whatever its input rank.

    Args:
        autoencoder: the autoencoder model, trained or not.
        threshold: ``"percentile"``, ``"mean_std"`` or a float.
        q: percentile used by ``"percentile"``, in ``[0, 100]``.
        k: number of standard deviations used by ``"mean_std"``.
        batch_size: batch size of scoring.

    Attributes:
        threshold_: the threshold in use (after ``fit``).
        train_scores_: reconstruction errors of the training examples.

    Example:

    >>> import numpy as np
    >>> from keras_sep.models import dense_autoencoder
    >>> normal = np.random.default_rng(0).uniform(0.4, 0.6, (64, 16)).astype("float32")
    >>> detector = AnomalyDetector(dense_autoencoder(16, hidden=(8,), code_dim=4))
    >>> detector = detector.fit(normal, epochs=1, verbose=0)
    >>> detector.predict(normal).shape
    (64,)

    References:
        - M. Sakurada, T. Yairi, "Anomaly detection using autoencoders with
          nonlinear dimensionality reduction", MLSDA workshop, 2014.
        - V. Chandola, A. Banerjee, V. Kumar, "Anomaly detection: a survey",
          ACM Computing Surveys, 2009.
    """

    def __init__(self, autoencoder, threshold="percentile", q=99.0, k=3.0, batch_size=256):
        if not isinstance(autoencoder, keras.Model):
            raise ValueError(f"autoencoder must be a keras.Model, got {autoencoder!r}")
        if not isinstance(threshold, (int, float)) and threshold not in THRESHOLDS:
            raise ValueError(
                f"threshold must be one of {THRESHOLDS} or a number, got {threshold!r}"
            )
        if not 0.0 <= float(q) <= 100.0:
            raise ValueError(f"q must be in [0, 100], got {q!r}")
        self.autoencoder = autoencoder
        self.threshold = threshold
        self.q = float(q)
        self.k = float(k)
        self.batch_size = int(batch_size)
        self.threshold_ = float(threshold) if isinstance(threshold, (int, float)) else None
        self.train_scores_ = None

    def fit(
        self,
        x_normal,
        train=True,
        epochs=50,
        batch_size=64,
        optimizer="adam",
        verbose="auto",
        **fit_kwargs,
    ):
        """Train on normal data (unless ``train=False``), then set the threshold.

        The autoencoder is compiled with ``optimizer`` and MSE when it is
        not compiled yet; ``fit_kwargs`` (``validation_split``,
        ``callbacks``, ...) go to ``keras.Model.fit``. With ``train=False``
        an already trained autoencoder is only calibrated. Returns ``self``.
        """
        x_normal = np.asarray(x_normal, dtype="float32")
        if train:
            if not self.autoencoder.compiled:
                self.autoencoder.compile(optimizer=optimizer, loss="mse")
            self.autoencoder.fit(
                x_normal,
                x_normal,
                epochs=epochs,
                batch_size=batch_size,
                verbose=verbose,
                **fit_kwargs,
            )
        self.train_scores_ = self.score(x_normal)
        self.threshold_ = self.threshold_from_scores(self.train_scores_)
        return self

    def threshold_from_scores(self, scores):
        """The threshold this detector's rule picks from normal ``scores``."""
        scores = np.asarray(scores, dtype="float64")
        if isinstance(self.threshold, (int, float)):
            return float(self.threshold)
        if self.threshold == "percentile":
            return float(np.percentile(scores, self.q))
        return float(scores.mean() + self.k * scores.std())

    def score(self, x):
        """Per-example mean squared reconstruction error, shape ``(n,)``."""
        x = np.asarray(x, dtype="float32")
        reconstruction = predict_numpy(self.autoencoder, x, self.batch_size)
        squared = np.square(reconstruction - x).reshape(len(x), -1)
        return squared.mean(axis=1)

    def predict(self, x):
        """Boolean ``(n,)``: True where the error exceeds the threshold."""
        if self.threshold_ is None:
            raise ValueError("The threshold is not set; call fit(x_normal) first.")
        return self.score(x) > self.threshold_

    def evaluate(self, x, labels):
        """ROC-AUC of the scores and precision/recall/F1 at the threshold.

        ``labels`` are 1 (or True) for anomalies. Returns a dict with keys
        ``auc``, ``precision``, ``recall``, ``f1`` and ``threshold``.
        """
        labels = np.asarray(labels).astype(bool)
        scores = self.score(x)
        predicted = scores > self.threshold_
        precision, recall = precision_recall(labels, predicted)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {
            "auc": roc_auc(labels, scores),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "threshold": self.threshold_,
        }


def roc_auc(labels, scores):
    """Area under the ROC curve: ``P(score of anomaly > score of normal)``.

    Computed from the ranks of the scores (Mann–Whitney U), ties counting
    one half, in ``O(n log n)``. ``labels`` are truthy for positives.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype="float64").ravel()
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        raise ValueError("roc_auc needs at least one positive and one negative label")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores), dtype="float64")
    # Average rank (1-based) over each run of tied scores.
    _, starts, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = starts + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    u = ranks[labels].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def precision_recall(labels, predicted):
    """Precision and recall of boolean ``predicted`` against ``labels``."""
    labels = np.asarray(labels).astype(bool).ravel()
    predicted = np.asarray(predicted).astype(bool).ravel()
    true_positives = np.sum(labels & predicted)
    precision = true_positives / predicted.sum() if predicted.any() else 0.0
    recall = true_positives / labels.sum() if labels.any() else 0.0
    return float(precision), float(recall)
