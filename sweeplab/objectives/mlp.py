"""The network objective contract, shared by the torch and Keras backends (no framework import).

:class:`MLPObjective` reads the trial (params, settings, transfer plan), resolves the
model family's config (``objective.model``: :class:`~sweeplab.objectives.config.MLPConfig`
or :class:`~sweeplab.objectives.config.CNNConfig`), describes the network (its
:class:`~sweeplab.spaces.architecture.NetworkPlan`: an MLP or a CNN), runs the backend's
training loop with one :class:`~sweeplab.objectives.epochs.EpochPolicy` and returns the
policy's final metrics. A backend only translates the plan into its layers and trains
one model an epoch at a time (a :class:`FoldLearner`); the epoch loop is here, once: every
family and both frameworks train through it, one model per fold in lockstep (a holdout
split is one fold), so a pruned or early-stopped trial stops every fold at once.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from sweeplab.objectives.base import BaseObjective, TrialContext
from sweeplab.objectives.config import NetworkConfig, config_type
from sweeplab.objectives.dataset import Dataset
from sweeplab.objectives.epochs import EpochPolicy
from sweeplab.objectives.training import TrialSettings, check_model_data, need_dataset, trial_settings
from sweeplab.objectives.transfer import TransferPlan, plan_trial
from sweeplab.spaces.architecture import NetworkPlan

__all__ = ["Fitted", "FoldLearner", "MLPObjective", "MLPTrial"]


@dataclass(frozen=True)
class MLPTrial:
    """What a backend trains: the config, the settings, the network, the epoch policy.

    ``seed`` is the trial's seed mod 2**32; ``transfer`` the fine-tuning plan (None
    without ``init_from``).
    """

    cfg: NetworkConfig
    settings: TrialSettings
    plan: NetworkPlan
    policy: EpochPolicy
    dataset: Dataset
    seed: int
    cpus: float
    gpus: float
    transfer: TransferPlan | None


@dataclass(frozen=True)
class Fitted:
    """What a backend hands back after training (best weights restored).

    ``test``: ``(test_loss, test_accuracy|test_mae)`` when the dataset has test rows;
    ``latency_ms``: see :mod:`sweeplab.objectives.latency`.
    """

    train_seconds: float
    test: tuple[float, float] | None
    latency_ms: float


class FoldLearner(ABC):
    """One model of a trial (one fold's, or the holdout split's), trained one epoch per call.

    ``model`` is the backend's model. The objective's loop calls, per epoch,
    :meth:`train_epoch` then :meth:`validate`, and :meth:`keep_best` when the epoch is the
    best so far; :meth:`finish` restores the kept weights (the last ones when none were kept).
    """

    model: Any

    @abstractmethod
    def train_epoch(self, epoch: int, lr: float) -> tuple[float, float]:
        """Train epoch ``epoch`` (1-based) at learning rate ``lr``; return the mean training loss
        and accuracy (or MAE) over the epoch's samples, as the model was while training on them."""

    @abstractmethod
    def validate(self) -> tuple[float, float]:
        """Mean loss and accuracy (or MAE) on the fold's validation rows, in inference mode."""

    @abstractmethod
    def keep_best(self) -> None:
        """Copy the model's current weights as the best ones."""

    @abstractmethod
    def finish(self) -> None:
        """Restore the kept best weights and leave the model in inference mode."""

    @abstractmethod
    def test(self, dataset: Dataset) -> tuple[float, float] | None:
        """``(test_loss, test_accuracy|test_mae)`` on ``dataset``'s test rows; None without test rows."""

    @abstractmethod
    def latency_ms(self, X: Any) -> float:
        """Mean predict latency per row on rows ``X`` (:mod:`sweeplab.objectives.latency`)."""


class MLPObjective(BaseObjective):
    """Train one trial's network (any model family); the contract both frameworks keep, value for value.

    Contract of :meth:`run`:

    - ``ctx.settings`` gives ``model`` (the family, default ``mlp``), ``task``
      (defaults to ``ctx.dataset.task``), ``epochs`` (>= 1) and ``early_stopping``
      (``None`` or an object/mapping with ``patience``, ``min_delta`` = 0,
      ``monitor`` = ``"val_loss"``); ``ctx.params`` -> the family's config
      (``config_type(model).from_params``: :class:`MLPConfig` or ``CNNConfig``).
    - The network is ``cfg.plan(dataset.input_shape, dataset.n_outputs, task)``. MLP:
      per hidden layer dense -> [batch norm] -> activation -> [dropout], then a dense
      output layer (logits, or the value for regression). CNN: convolution blocks on the
      images, flatten, then the same dense layers
      (:class:`~sweeplab.spaces.cnn.CNNPlan`). Loss: cross-entropy on logits, or MSE.
      A dataset of rows for a family that trains on images (or the reverse) is a
      ``DataError``.
    - Seeded with ``ctx.seed`` (mod 2**32): same context on CPU -> identical metrics
      (``train_seconds`` and ``latency_ms`` aside). Threads follow ``ctx.cpus``; a GPU is
      used when ``ctx.gpus > 0`` and the framework sees one (see each backend).
    - After every epoch ``ctx.reporter.report(epoch, metrics)`` with a 1-based epoch and
      metrics ``loss, accuracy, val_loss, val_accuracy, lr`` (classification) or
      ``loss, mae, val_loss, val_mae, lr`` (regression). Train metrics are averaged over
      the epoch's samples as the model was while training on them; val metrics come
      from the full validation set in inference mode; ``lr`` is the learning rate used
      during that epoch. :class:`~sweeplab.objectives.base.TrialPruned` from the
      reporter propagates.
    - A non-finite training loss raises ``FloatingPointError`` naming nan/inf and the
      epoch, before that epoch is reported; a non-finite validation loss likewise.
    - Early stopping: stop when the monitored metric (min for ``*loss``/``*mae``, max for
      ``*accuracy``) has not improved by more than ``min_delta`` for ``patience`` epochs.
    - Best weights are always restored at the end, with or without early stopping: the
      epoch with the best monitored metric (``val_loss`` without early stopping; the
      earliest on ties). The returned ``val_*`` and train metrics are that epoch's
      history entry, so ``val_loss`` is the minimum over the history when monitoring it.
    - Learning-rate schedules: ``exponential`` multiplies it by ``lr_decay_rate`` after
      each epoch; ``plateau`` is torch's ``ReduceLROnPlateau`` on ``val_loss`` (factor,
      patience, ``min_lr``, absolute threshold
      :data:`~sweeplab.objectives.epochs.PLATEAU_THRESHOLD`).
    - Returns those metrics plus ``test_loss`` and ``test_accuracy``/``test_mae`` (best
      weights, when the dataset has test rows), ``best_epoch`` (1-based),
      ``epochs_trained``, ``n_params``, ``train_seconds`` and ``latency_ms`` (mean per-row
      predict latency on the validation rows, see :mod:`sweeplab.objectives.latency`).
    - Cross-validation (``ctx.dataset.folds``, from ``objective.validation: {kfold: K,
      repeats: R}``): one model per fold (:meth:`Dataset.fold`), trained in lockstep, one
      epoch of each; the reported metrics are the means over folds
      (:meth:`~sweeplab.objectives.epochs.EpochPolicy.end_folds`), and the best epoch, early
      stopping, the learning-rate schedule and pruning follow that mean curve (a pruned
      trial stops every fold). The fold models are initialized one after the other from
      the trial's seed; fold ``i`` shuffles with seed ``seed + i``. Returned: the best epoch's
      means, plus ``<metric>_std`` (spread across folds) and ``n_folds``. The ``test_*``
      metrics, ``latency_ms`` and ``self.model`` are fold 0's model (best epoch of the mean
      curve, trained on (K-1)/K of the rows left after the test split): one honest,
      cheap look at the test rows, which no fold ever trained or validated on.
    - ``init_from`` (model mlp; ``ctx.dataset.init_from`` set, see :mod:`sweeplab.objectives.transfer`):
      the source's architecture and hidden-layer weights, a new output layer, the first
      ``n_frozen_layers`` hidden layers frozen, ``finetune_learning_rate`` as learning rate;
      ``n_params`` then counts the whole network and ``n_trainable_params`` the trained part.

    After ``run`` (also after a pruned or failed one), ``self.model`` holds the model
    (best weights once run returned), ``self.history`` one metrics dict per epoch trained
    (``history[i]`` is epoch ``i + 1``; the reported keys, no epoch key),
    ``self.fold_history`` per epoch one dict per fold (cross-validation; empty otherwise),
    ``self.config`` the config and ``self.plan`` the network's description.
    """

    framework = "mlp"  # the backend's name in messages ("torch", "keras")

    def __init__(self) -> None:
        self.model: Any = None
        self.history: list[dict[str, float]] = []
        self.fold_history: list[list[dict[str, float]]] = []
        self.config: NetworkConfig | None = None
        self.plan: NetworkPlan | None = None

    def run(self, ctx: TrialContext) -> dict[str, float]:
        """Train and evaluate one trial; return final metrics (see the class docstring)."""
        self.config, self.plan, self.model, self.history, self.fold_history = None, None, None, [], []
        ds = need_dataset(ctx.dataset, self.framework)
        settings = trial_settings(ctx.settings, ds)
        check_model_data(settings.model, ds)
        params, transfer = plan_trial(ctx.params, ctx.dataset)  # init_from: the source's architecture
        cfg = config_type(settings.model).from_params(params)
        plan = cfg.plan(ds.input_shape, ds.n_outputs, settings.task)
        self.config, self.plan = cfg, plan
        policy = EpochPolicy(settings, cfg, ctx.reporter, self.history)
        self.fold_history = policy.fold_history
        trial = MLPTrial(cfg=cfg, settings=settings, plan=plan, policy=policy, dataset=ds,
                         seed=int(ctx.seed) % (2**32), cpus=ctx.cpus, gpus=ctx.gpus, transfer=transfer)
        fitted = self._fit(trial)
        return policy.final_metrics(test=fitted.test, n_params=plan.n_params, train_seconds=fitted.train_seconds,
                                    latency_ms=fitted.latency_ms,
                                    frozen_params=transfer.frozen_params if transfer is not None else None)

    def _fit(self, t: MLPTrial) -> Fitted:
        """Build one model per fold (fold 0's is ``self.model``), train them in lockstep under
        ``t.policy``, restore the best epoch's weights; test and time fold 0's model."""
        self._begin(t)
        folds = t.dataset.fold_datasets()
        learners: list[FoldLearner] = []
        for i, fold in enumerate(folds):
            learners.append(self._learner(t, fold, (t.seed + i) % (2**32)))
            if i == 0:
                self.model = learners[0].model
        policy = t.policy
        start = time.perf_counter()
        for epoch in policy.epochs():
            values = []
            for i, learner in enumerate(learners):
                loss, stat = learner.train_epoch(epoch, policy.lr)
                policy.check_loss(epoch, loss, "training", i if len(learners) > 1 else None)  # before validating
                values.append((loss, stat, *learner.validate()))
            if policy.end_folds(epoch, values):
                for learner in learners:
                    learner.keep_best()
        train_seconds = time.perf_counter() - start
        for learner in learners:
            learner.finish()
        first = learners[0]
        return Fitted(train_seconds=train_seconds, test=first.test(t.dataset),
                      latency_ms=first.latency_ms(folds[0].X_val))

    def _begin(self, trial: MLPTrial) -> None:
        """Set the process up for ``trial`` (threads, seeds) before its models are built."""

    @abstractmethod
    def _learner(self, trial: MLPTrial, fold: Dataset, seed: int) -> FoldLearner:
        """A model of ``trial.plan`` (fine-tuned from ``trial.transfer`` when set) that trains on
        ``fold``'s training rows, shuffled with ``seed``, and validates on its validation rows."""
