"""The one scaling rule of a study's features, in numpy alone.

A :class:`~sweeplab.objectives.dataset.Dataset` carries the scaler its arrays were scaled
with, and every trial's worker unpickles it: a scaler that needs only numpy keeps
scikit-learn (about 1.7 CPU-seconds of imports) out of every worker process.

Both scalers standardize each feature of the last axis over all the other axes, in float64:
``(x - mean_) / scale_``, where ``scale_`` is the standard deviation, or 1 for a feature
that is constant (scikit-learn's ``StandardScaler`` rule, including its bound on what counts
as constant, so rows are scaled as ``StandardScaler`` scales them). ``mean_`` and ``scale_``
broadcast over the last axis, so a saved model repeats the scaling from the two vectors alone.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ImageScaler", "RowScaler"]


class _Standardizer:
    """Standardize each feature of the last axis of ``ndim``-dimensional arrays (``what``
    names them in errors); the subclasses below set both."""

    ndim: int
    what: str

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> _Standardizer:
        """Learn ``mean_`` and ``scale_`` per feature from the training part ``X``."""
        x = np.asarray(X, dtype=np.float64)
        if x.ndim != self.ndim:
            raise ValueError(f"{type(self).__name__} fits {self.what}, got shape {x.shape}")
        axes = tuple(range(self.ndim - 1))
        n = math.prod(x.shape[:-1])
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        eps = np.finfo(np.float64).eps
        # scikit-learn's bound on the variance of a constant feature computed in two passes
        constant = var <= n * eps * var + (n * mean * eps) ** 2
        std = np.sqrt(var)
        self.mean_ = mean
        self.scale_ = np.where(constant | (std < 10 * eps), 1.0, std)
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean_ is None or self.scale_ is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit(training_part) first")
        return self.mean_, self.scale_

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``(X - mean_) / scale_`` per feature (float64)."""
        mean, scale = self._fitted()
        return (np.asarray(X, dtype=np.float64) - mean) / scale

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """Undo :meth:`transform`: ``X * scale_ + mean_`` per feature (float64)."""
        mean, scale = self._fitted()
        return np.asarray(X, dtype=np.float64) * scale + mean


class RowScaler(_Standardizer):
    """Rows ``(n, features)``: each column standardized over the rows."""

    ndim = 2
    what = "rows (n, features)"


class ImageScaler(_Standardizer):
    """Images ``(n, H, W, C)``: each channel standardized over every training pixel of it."""

    ndim = 4
    what = "images (n, H, W, C)"
