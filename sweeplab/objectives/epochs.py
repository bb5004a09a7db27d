"""The epoch policy of the network objectives (every model family), written once and free of any framework.

Both objectives run their framework's loop (a torch step loop, a Keras ``fit``) and hand
each finished epoch's four values to one :class:`EpochPolicy`, which decides everything
else the same way for both:

- non-finite losses raise ``FloatingPointError`` before the epoch is reported
  (:meth:`EpochPolicy.check_loss`);
- the epoch's metrics (``loss, accuracy|mae, val_loss, val_accuracy|val_mae, lr``) are
  appended to the history and reported; ``TrialPruned`` from the reporter propagates;
- the best epoch (monitored metric, earliest on ties) and early stopping (``patience``
  epochs without an improvement by more than ``min_delta``);
- the learning rate of the next epoch (``none``, ``exponential``, ``plateau``:
  torch's ``ReduceLROnPlateau`` on ``val_loss``, :class:`Plateau`);
- the trial's final metrics (:meth:`EpochPolicy.final_metrics`).

Cross-validation (``objective.validation: {kfold: K}``) goes through the same policy:
the backend trains its fold models in lockstep, one epoch of each, and hands the epoch's
values of every fold to :meth:`EpochPolicy.end_folds`, which keeps them
(``fold_history``) and ends the epoch on their mean; the reported metrics, the best
epoch, early stopping and the learning rate all follow the mean curve, and
:meth:`EpochPolicy.final_metrics` adds the spread across folds at the best epoch.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Sequence
from typing import Any

from sweeplab.core.keys import METRIC_N_FOLDS, METRIC_STD_SUFFIX
from sweeplab.objectives.config import NetworkConfig
from sweeplab.objectives.training import TrialSettings

__all__ = ["PLATEAU_THRESHOLD", "EpochPolicy", "Plateau", "nonfinite_name"]

#: ReduceLROnPlateau's improvement threshold, absolute, as Keras' ``min_delta=1e-4``.
PLATEAU_THRESHOLD = 1e-4

#: torch's ReduceLROnPlateau ``eps``: a reduction smaller than this is not applied.
PLATEAU_EPS = 1e-8


def nonfinite_name(value: float) -> str:
    """``"nan"`` or ``"inf"``, for the message of a diverged loss."""
    return "nan" if math.isnan(value) else "inf"


class Plateau:
    """torch's ``ReduceLROnPlateau(mode="min", threshold_mode="abs", cooldown=0)``, on floats."""

    def __init__(self, factor: float, patience: int, min_lr: float) -> None:
        self.factor, self.patience, self.min_lr = float(factor), int(patience), float(min_lr)
        self.best = math.inf
        self.bad_epochs = 0

    def step(self, value: float, lr: float) -> float:
        """Record this epoch's ``value``; return the learning rate for the next epoch."""
        if value < self.best - PLATEAU_THRESHOLD:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.bad_epochs = 0
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > PLATEAU_EPS:
                return new_lr
        return lr


class EpochPolicy:
    """What happens after every epoch of one network trial (see the module docstring).

    ``lr`` is the learning rate of the running epoch (the backend applies it when it
    changes); ``stop`` turns true when early stopping ends the trial; ``history`` (the
    list given, or a new one) gets one metrics dict per epoch; ``best_epoch`` is 1-based
    (0 before the first epoch). ``fold_history`` (epochs ended by :meth:`end_folds`) gets,
    per epoch, one dict per fold of its ``loss, accuracy|mae, val_loss, val_accuracy|val_mae``.
    """

    def __init__(self, settings: TrialSettings, cfg: NetworkConfig, reporter: Any,
                 history: list[dict[str, float]] | None = None) -> None:
        self.settings = settings
        self.cfg = cfg
        self.reporter = reporter
        self.history: list[dict[str, float]] = [] if history is None else history
        self.fold_history: list[list[dict[str, float]]] = []
        self.lr = float(cfg.learning_rate)
        self.plateau = Plateau(cfg.lr_factor, cfg.lr_patience, cfg.min_lr) if cfg.lr_schedule == "plateau" else None
        self.best_epoch = 0
        self.epochs_trained = 0
        self.stop = False
        self._best_key = math.inf  # sign * monitored value of the best epoch so far
        self._ref_key = math.inf  # sign * value at the last improvement by more than min_delta
        self._wait = 0

    def epochs(self) -> Iterator[int]:
        """Epochs 1, 2, ... up to ``settings.epochs``, until early stopping says stop."""
        for epoch in range(1, self.settings.epochs + 1):
            if self.stop:
                return
            yield epoch

    def check_loss(self, epoch: int, loss: float, split: str = "training", fold: int | None = None) -> None:
        """Raise ``FloatingPointError`` when ``loss`` (of the ``training`` or ``validation`` rows, of
        fold ``fold`` when given) is nan or inf."""
        if math.isfinite(loss):
            return
        hint = " or use batch_norm / a smaller batch_size" if split == "training" else ""
        of_fold = f" of fold {fold}" if fold is not None else ""
        raise FloatingPointError(
            f"{split} loss{of_fold} became {nonfinite_name(loss)} at epoch {epoch}; lower learning_rate "
            f"(was {self.cfg.learning_rate:g} with {self.cfg.optimizer}){hint}"
        )

    def end_epoch(self, epoch: int, loss: float, stat: float, val_loss: float, val_stat: float) -> bool:
        """Check, record and report ``epoch``, then set the next ``lr`` and ``stop``.

        ``stat`` / ``val_stat``: accuracy (classification) or MAE (regression). Returns
        True when this epoch is the best so far (the backend then keeps its weights); always
        False for a refit (``settings.keep_last``), whose ``best_epoch`` is the last epoch run.
        """
        self.epochs_trained = epoch
        self.check_loss(epoch, float(loss), "training")
        self.check_loss(epoch, float(val_loss), "validation")
        s = self.settings
        metrics = dict(zip(s.metric_names, [float(v) for v in (loss, stat, val_loss, val_stat, self.lr)], strict=True))
        self.history.append(metrics)

        key = s.sign * metrics[s.monitor]
        improved = key < self._best_key
        if s.keep_last:  # a refit: no epoch is chosen, the last one is the model
            improved, self.best_epoch = False, epoch
        elif improved:
            self._best_key, self.best_epoch = key, epoch
        if key < self._ref_key - s.min_delta:
            self._ref_key, self._wait = key, 0
        else:
            self._wait += 1

        self.reporter.report(epoch, dict(metrics))

        if self.plateau is not None:
            self.lr = self.plateau.step(metrics["val_loss"], self.lr)
        elif self.cfg.lr_schedule == "exponential":
            self.lr = self.lr * float(self.cfg.lr_decay_rate)
        self.stop = s.early_stopping and self._wait >= max(1, s.patience)
        return improved

    def end_folds(self, epoch: int, values: Sequence[Sequence[float]]) -> bool:
        """End ``epoch`` of a trial that trains one model per fold: ``values`` holds each fold's
        ``(loss, stat, val_loss, val_stat)``, in fold order.

        Each fold's losses are checked (``FloatingPointError`` naming the fold), the values kept
        in ``fold_history``, and the epoch ended (:meth:`end_epoch`) on their mean over folds:
        what is reported, the best epoch and early stopping all follow the mean curve. One fold
        (a holdout split) is :meth:`end_epoch` itself. Returns True when this epoch is the best
        so far (the backend then keeps every fold model's weights).
        """
        if not values:
            raise ValueError("end_folds needs the values of at least one fold")
        names = self.settings.metric_names[:4]
        rows = [[float(v) for v in fold] for fold in values]
        for i, row in enumerate(rows):
            if len(row) != len(names):
                raise ValueError(f"fold {i}: expected {len(names)} values ({', '.join(names)}), got {len(row)}")
            self.check_loss(epoch, row[0], "training", i if len(rows) > 1 else None)
            self.check_loss(epoch, row[2], "validation", i if len(rows) > 1 else None)
        if len(rows) > 1:
            self.fold_history.append([dict(zip(names, row, strict=True)) for row in rows])
        means = [math.fsum(column) / len(rows) for column in zip(*rows, strict=True)]
        return self.end_epoch(epoch, *means)

    def fold_spread(self) -> dict[str, float]:
        """The spread across folds at the best epoch: ``<metric>_std`` (population standard
        deviation, as scikit-learn's ``cv_results_``) of each fold metric, and ``n_folds``;
        empty without folds (a holdout trial) or before the first epoch."""
        if not self.fold_history or self.best_epoch == 0:
            return {}
        folds = self.fold_history[self.best_epoch - 1]
        out = {f"{name}{METRIC_STD_SUFFIX}": statistics.pstdev([fold[name] for fold in folds]) for name in folds[0]}
        out[METRIC_N_FOLDS] = float(len(folds))
        return out

    def final_metrics(self, *, test: tuple[float, float] | None, n_params: int, train_seconds: float,
                      latency_ms: float, frozen_params: int | None = None) -> dict[str, float]:
        """The trial's returned metrics: the best epoch's ``val_*`` and train metrics, then
        ``test_loss`` and ``test_accuracy|test_mae`` (when ``test`` is given), ``best_epoch``,
        ``epochs_trained``, ``n_params`` (the whole network), ``train_seconds`` and
        ``latency_ms``; with ``frozen_params`` (fine-tuning) also ``n_trainable_params``. A
        cross-validated trial's ``val_*`` and train metrics are the means over folds of the
        best epoch of the mean curve, and :meth:`fold_spread` is added (``val_loss_std``, ...,
        ``n_folds``)."""
        acc = self.settings.acc_name
        best = self.history[self.best_epoch - 1]
        result: dict[str, float] = {
            "val_loss": best["val_loss"],
            f"val_{acc}": best[f"val_{acc}"],
            "loss": best["loss"],
            acc: best[acc],
        }
        if test is not None:
            result["test_loss"], result[f"test_{acc}"] = float(test[0]), float(test[1])
        result.update(
            best_epoch=float(self.best_epoch),
            epochs_trained=float(self.epochs_trained),
            n_params=float(n_params),
            train_seconds=float(train_seconds),
            latency_ms=float(latency_ms),
        )
        if frozen_params is not None:
            result["n_trainable_params"] = float(n_params - frozen_params)
        result.update(self.fold_spread())
        return result
