"""The network objective contract, shared by the torch and Keras backends (no framework import).

:class:`MLPObjective` reads the trial (params, settings, transfer plan), resolves the
model family's config (``objective.model``: :class:`~sweeplab.objectives.config.MLPConfig`
or :class:`~sweeplab.objectives.config.CNNConfig`), describes the network (its
:class:`~sweeplab.spaces.architecture.NetworkPlan`: an MLP or a CNN), runs the backend's
training loop with one :class:`~sweeplab.objectives.epochs.EpochPolicy` and returns the
policy's final metrics. A backend only translates the plan into its layers and runs its
loop; every family trains through the same loop.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from sweeplab.objectives.base import BaseObjective, TrialContext
from sweeplab.objectives.config import NetworkConfig, config_type
from sweeplab.objectives.dataset import Dataset
from sweeplab.objectives.epochs import EpochPolicy
from sweeplab.objectives.training import TrialSettings, check_model_data, need_dataset, trial_settings
from sweeplab.objectives.transfer import TransferPlan, plan_trial
from sweeplab.spaces.architecture import NetworkPlan

__all__ = ["Fitted", "MLPObjective", "MLPTrial"]


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
    - ``init_from`` (model mlp; ``ctx.dataset.init_from`` set, see :mod:`sweeplab.objectives.transfer`):
      the source's architecture and hidden-layer weights, a new output layer, the first
      ``n_frozen_layers`` hidden layers frozen, ``finetune_learning_rate`` as learning rate;
      ``n_params`` then counts the whole network and ``n_trainable_params`` the trained part.

    After ``run`` (also after a pruned or failed one), ``self.model`` holds the model
    (best weights once run returned), ``self.history`` one metrics dict per epoch trained
    (``history[i]`` is epoch ``i + 1``; the reported keys, no epoch key),
    ``self.config`` the config and ``self.plan`` the network's description.
    """

    framework = "mlp"  # the backend's name in messages ("torch", "keras")

    def __init__(self) -> None:
        self.model: Any = None
        self.history: list[dict[str, float]] = []
        self.config: NetworkConfig | None = None
        self.plan: NetworkPlan | None = None

    def run(self, ctx: TrialContext) -> dict[str, float]:
        """Train and evaluate one trial; return final metrics (see the class docstring)."""
        self.config, self.plan, self.model, self.history = None, None, None, []
        ds = need_dataset(ctx.dataset, self.framework)
        settings = trial_settings(ctx.settings, ds)
        check_model_data(settings.model, ds)
        params, transfer = plan_trial(ctx.params, ctx.dataset)  # init_from: the source's architecture
        cfg = config_type(settings.model).from_params(params)
        plan = cfg.plan(ds.input_shape, ds.n_outputs, settings.task)
        self.config, self.plan = cfg, plan
        policy = EpochPolicy(settings, cfg, ctx.reporter, self.history)
        trial = MLPTrial(cfg=cfg, settings=settings, plan=plan, policy=policy, dataset=ds,
                         seed=int(ctx.seed) % (2**32), cpus=ctx.cpus, gpus=ctx.gpus, transfer=transfer)
        fitted = self._fit(trial)
        return policy.final_metrics(test=fitted.test, n_params=plan.n_params, train_seconds=fitted.train_seconds,
                                    latency_ms=fitted.latency_ms,
                                    frozen_params=transfer.frozen_params if transfer is not None else None)

    @abstractmethod
    def _fit(self, trial: MLPTrial) -> Fitted:
        """Build ``trial.plan`` (``self.model``), train it under ``trial.policy``, restore the best weights."""
