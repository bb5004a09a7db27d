"""The in-memory dataset a trial trains on, prepared once per study by the driver.

The driver builds one :class:`Dataset` (split and scaled) and puts it in Ray's object
store once; every trial on every node reads the same arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
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
    float32 of shape ``(n,)``. ``scaler`` is fitted (a scikit-learn ``StandardScaler``
    for rows, a per-channel :class:`~sweeplab.objectives.data.ImageScaler` for images)
    with ``mean_`` and ``scale_``; applying ``scaler.transform`` to raw feature rows
    (raw images) gives the model's inputs. ``feature_names`` name the raw values of one
    example in order (an image's pixels in (height, width, channel) order).

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
    refit: bool = False

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
