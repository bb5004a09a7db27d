"""Small image datasets and trial contexts for the CNN tests (torch and Keras alike)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from sweeplab.objectives.base import NullReporter, TrialContext
from sweeplab.objectives.data import ImageScaler
from sweeplab.objectives.dataset import Dataset

IMAGE_CLS_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}


def digits_images(n_train: int = 600, n_val: int = 150, n_test: int = 150, test: bool = True) -> Dataset:
    """scikit-learn's digits as (n, 8, 8, 1) images, a fixed shuffled split, scaled per channel on train."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = np.random.default_rng(0).permutation(len(bunch.target))
    images = bunch.images[order].reshape(-1, 8, 8, 1).astype(np.float64)
    y = bunch.target[order].astype(np.int64)
    cuts = (n_train, n_train + n_val, n_train + n_val + (n_test if test else 0))
    scaler = ImageScaler().fit(images[: cuts[0]])

    def part(lo: int, hi: int) -> np.ndarray:
        return np.ascontiguousarray(scaler.transform(images[lo:hi]), dtype=np.float32)

    return Dataset(
        task="classification",
        X_train=part(0, cuts[0]), y_train=y[: cuts[0]],
        X_val=part(cuts[0], cuts[1]), y_val=y[cuts[0] : cuts[1]],
        X_test=part(cuts[1], cuts[2]), y_test=y[cuts[1] : cuts[2]],
        feature_names=tuple(f"pixel_{i}_{j}" for i in range(8) for j in range(8)),
        class_labels=tuple(range(10)), scaler=scaler, name="digits-images",
    )


def brightness_images(n: int = 240, seed: int = 0) -> Dataset:
    """Regression on (n, 6, 6, 2) random images: the target is the mean of channel 0's left half."""
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 6, 6, 2))
    y = images[:, :, :3, 0].mean(axis=(1, 2))
    y = ((y - y.mean()) / y.std()).astype(np.float32)
    scaler = ImageScaler().fit(images[: n // 2])
    x = scaler.transform(images).astype(np.float32)
    a, b = n // 2, 3 * n // 4
    return Dataset("regression", x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:],
                   tuple(f"pixel_{i}_{j}_{c}" for i in range(6) for j in range(6) for c in range(2)),
                   scaler=scaler, name="brightness")


DIGITS = digits_images()


def cnn_ctx(
    params: Mapping[str, Any] | None = None,
    *,
    dataset: Dataset = DIGITS,
    epochs: int = 2,
    seed: int = 7,
    reporter: Any = None,
    early_stopping: Any = None,
    model: str = "cnn",
) -> TrialContext:
    """A trial of model ``model`` (default a small CNN: 1 block of 4 filters, no hidden layer)."""
    base = {"n_blocks": 1, "filters": 4, "hidden_units": []} if model == "cnn" else {}
    return TrialContext(
        params={**base, **dict(params or {})},
        dataset=dataset,
        seed=seed,
        reporter=reporter if reporter is not None else NullReporter(),
        settings=SimpleNamespace(task=dataset.task, epochs=epochs, early_stopping=early_stopping, model=model),
    )


def write_npz(path: Path, **arrays: Any) -> Path:
    """``numpy.savez(path, **arrays)``; returns the path."""
    np.savez(path, **arrays)
    return path
