"""Principal component analysis by SVD: the linear baseline of autoencoders."""
import numpy as np


class PCA:
    """Linear encoder/decoder: projection onto the top principal directions.

    ``fit`` centres the data and takes the thin SVD ``X − μ = U S Vᵀ``; the
    code of ``x`` is ``(x − μ) V_k`` and its reconstruction ``z V_kᵀ + μ``,
    with ``V_k`` the first ``code_dim`` right singular vectors. This is the
    best rank-``code_dim`` affine reconstruction in squared error, the
    yardstick Hinton & Salakhutdinov's deep autoencoder beats, and the
    solution a linear autoencoder with MSE loss converges to. It has the
    autoencoders' ``encode`` / ``decode`` / ``reconstruct`` interface so the
    two can be compared line by line. Signs of the components follow the
    convention that the largest-magnitude entry of each is positive.

    Args:
        code_dim: number of principal components kept.

    Attributes:
        mean_: ``(features,)`` training mean.
        components_: ``(code_dim, features)`` principal directions, rows.
        explained_variance_: ``(code_dim,)`` variance along each direction.
        explained_variance_ratio_: ``(code_dim,)`` its share of the total.

    Input shape:
        ``(n, features)``; images can be flattened first.

    Output shape:
        ``encode``: ``(n, code_dim)``; ``decode`` and ``reconstruct``:
        ``(n, features)``.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(100, 3)) @ np.diag([3.0, 1.0, 0.01])
    >>> pca = PCA(2).fit(x)
    >>> pca.encode(x).shape
    (100, 2)
    >>> bool(np.mean((pca.reconstruct(x) - x) ** 2) < 1e-3)
    True

    References:
        - K. Pearson, "On lines and planes of closest fit to systems of
          points in space", 1901.
        - G. E. Hinton, R. R. Salakhutdinov, "Reducing the dimensionality of
          data with neural networks", Science, 2006.
    """

    def __init__(self, code_dim):
        code_dim = int(code_dim)
        if code_dim < 1:
            raise ValueError(f"code_dim must be >= 1, got {code_dim!r}")
        self.code_dim = code_dim
        self.mean_ = None
        self.components_ = None
        self.explained_variance_ = None
        self.explained_variance_ratio_ = None

    def fit(self, x):
        """Fit to ``x`` of shape ``(n, features)``; returns ``self``."""
        x = self._as_matrix(x)
        n, features = x.shape
        if self.code_dim > min(n, features):
            raise ValueError(
                f"code_dim {self.code_dim} exceeds min(n, features) = "
                f"{min(n, features)} of data of shape {x.shape}"
            )
        self.mean_ = x.mean(axis=0)
        _, singular, vt = np.linalg.svd(x - self.mean_, full_matrices=False)
        # Deterministic signs: the largest-magnitude entry of each row > 0.
        signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
        vt *= np.where(signs == 0, 1.0, signs)[:, None]
        variance = singular**2 / max(n - 1, 1)
        self.components_ = vt[: self.code_dim]
        self.explained_variance_ = variance[: self.code_dim]
        total = variance.sum()
        self.explained_variance_ratio_ = self.explained_variance_ / (
            total if total > 0 else 1.0
        )
        return self

    def encode(self, x):
        """Codes ``(x − μ) V_k`` of shape ``(n, code_dim)``."""
        self._check_fitted()
        return (self._as_matrix(x) - self.mean_) @ self.components_.T

    def decode(self, codes):
        """Reconstructions ``z V_kᵀ + μ`` of shape ``(n, features)``."""
        self._check_fitted()
        codes = np.asarray(codes, dtype="float64")
        if codes.ndim != 2 or codes.shape[1] != self.code_dim:
            raise ValueError(
                f"codes must have shape (n, {self.code_dim}), got {codes.shape}"
            )
        return codes @ self.components_ + self.mean_

    def reconstruct(self, x):
        """``decode(encode(x))``."""
        return self.decode(self.encode(x))

    def _check_fitted(self):
        if self.components_ is None:
            raise ValueError("This PCA is not fitted yet; call fit(x) first.")

    @staticmethod
    def _as_matrix(x):
        x = np.asarray(x, dtype="float64")
        if x.ndim != 2:
            raise ValueError(f"PCA expects data of shape (n, features), got {x.shape}")
        return x


def pca_baseline(code_dim):
    """An unfitted :class:`PCA` with ``code_dim`` components.

    Example:

    >>> pca_baseline(10).code_dim
    10
    """
    return PCA(code_dim)
