"""The in-memory dataset a trial trains on, prepared once per study by the driver.

The driver builds one :class:`Dataset` (split and scaled) and puts it in Ray's object
store once; every trial on every node reads the same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """Train/validation/test arrays plus the preprocessing that produced them.

    Features are float32 and already scaled with ``scaler`` (fitted on the training
    part only): rows ``(n, n_features)`` for a family that trains on rows, images
    ``(n, H, W, C)`` for one that trains on images (``input_shape`` tells them apart).
    Classification targets are int64 class indices ``0..n_classes-1``;
    ``class_labels[i]`` is the original label of index ``i``. Regression targets are
    float32 of shape ``(n,)``. ``scaler`` is fitted (:mod:`sweeplab.objectives.scaling`:
    a per-feature :class:`~sweeplab.objectives.scaling.RowScaler` for rows, a per-channel
    :class:`~sweeplab.objectives.scaling.ImageScaler` for images; a user's own Dataset may
    hold any scaler with ``transform``) with ``mean_`` and ``scale_``; applying
    ``scaler.transform`` to raw feature rows (raw images) gives the model's inputs.
    ``feature_names`` name the raw values of one example in order (an image's pixels in
    (height, width, channel) order).

    ``folds`` (K-fold cross-validation, ``objective.validation``): the ``(train,
    validation)`` index pairs into ``X_train`` / ``y_train`` of every fold (``K * repeats``
    of them, repeat by repeat), which then hold every row left after the test split, while
    ``X_val`` / ``y_val`` are empty; :meth:`fold` gives one fold as a Dataset of its own.
    Empty for a holdout split.

    ``init_from``: the source model of a transfer-learning study
    (:class:`sweeplab.objectives.transfer.SourceModel`: its hidden layers' weights as
    numpy arrays and its config), attached by the driver so it travels to every trial in
    Ray's object store with the arrays; None otherwise.

    ``refit``: True for the data of a champion's refit (:func:`~sweeplab.objectives.data.load_dataset`
    with ``merge_validation=True``): ``X_train`` holds every row the study may use (its
    training and validation parts), ``scaler`` is fitted on them, and ``X_val`` is the same
    rows (the network reports its per-epoch ``val_*`` metrics on them, and nothing selects
    by them). A network trains such a dataset for exactly ``epochs`` epochs, without early
    stopping, and keeps its last weights; ``X_test`` is still untouched.
    """

    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    class_labels: tuple[Any, ...] = ()
    scaler: Any = None
    name: str = "dataset"
    info: dict[str, Any] = field(default_factory=dict)
    init_from: Any = None
    folds: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    refit: bool = False

    @property
    def n_folds(self) -> int:
        """Models a trial trains on this dataset: ``len(folds)`` with K-fold, 1 with a holdout split."""
        return len(self.folds) or 1

    def fold(self, index: int) -> Dataset:
        """Fold ``index`` (0-based) as a holdout Dataset: its training rows in ``X_train`` / ``y_train``,
        its validation rows in ``X_val`` / ``y_val`` (copies, in the rows' order), the same test
        rows, scaler and labels; ``info`` gains ``fold`` and the fold's ``n_train`` / ``n_val``.
        With a holdout split, ``fold(0)`` is this dataset. IndexError for another index."""
        if not self.folds:
            if index != 0:
                raise IndexError(f"a holdout dataset has one fold (0), got fold {index}")
            return self
        if not -len(self.folds) <= index < len(self.folds):
            raise IndexError(f"fold {index} out of range: the dataset has {len(self.folds)} folds "
                             f"(0..{len(self.folds) - 1})")
        train, val = self.folds[index]
        info = {**self.info, "fold": index % len(self.folds), "n_train": len(train), "n_val": len(val)}
        return replace(self, X_train=self.X_train[train], y_train=self.y_train[train], X_val=self.X_train[val],
                       y_val=self.y_train[val], info=info, folds=())

    def fold_datasets(self) -> list[Dataset]:
        """Every fold as a Dataset (:meth:`fold`), in order; ``[self]`` with a holdout split."""
        return [self.fold(i) for i in range(self.n_folds)]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: ``(n_features,)`` for rows, ``(H, W, C)`` for images."""
        return tuple(int(n) for n in self.X_train.shape[1:])

    @property
    def n_features(self) -> int:
        """Values per example: the columns of rows, ``H * W * C`` of images."""
        return math.prod(self.input_shape)

    @property
    def n_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.class_labels) if self.task == "classification" else 0

    @property
    def n_outputs(self) -> int:
        """Width of the MLP's output layer (the one rule, read by both objectives, the model
        format and the constraints): 1 for regression; for classification ``n_classes``, or
        the largest class index + 1 when fewer than two labels are recorded."""
        if self.task != "classification":
            return 1
        n = self.n_classes
        if n < 2:
            n = max((int(np.max(y)) for y in (self.y_train, self.y_val) if len(y)), default=0) + 1
        return n
