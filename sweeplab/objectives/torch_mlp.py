"""The PyTorch MLP objective: trains one :class:`~sweeplab.objectives.config.MLPConfig` per trial.

This module imports torch at its top, so nothing imports it at package import time: the
worker loads it lazily (``framework: torch``) and keeps it for every later trial of the
process.

Training, in short (see :meth:`TorchMLPObjective.run` for the full contract):

- model: ``Linear -> [BatchNorm1d] -> activation -> [Dropout]`` per hidden layer, then an
  output ``Linear`` producing logits (classification) or one value (regression);
- loss: ``CrossEntropyLoss`` on logits, or ``MSELoss``;
- mini-batches: the training tensors are permuted once per epoch with a
  ``torch.Generator`` seeded from the trial's seed and sliced into ``batch_size`` rows;
  no sample is dropped (no ``DataLoader``, no worker processes);
- per-epoch metrics are accumulated on tensors and read back with one device sync per
  epoch; validation is one forward pass in eval mode.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from sweeplab.core.errors import DataError
from sweeplab.objectives.base import BaseObjective, TrialContext
from sweeplab.objectives.config import MLPConfig
from sweeplab.objectives.latency import predict_latency_ms
from sweeplab.objectives.training import batch_bounds, need_dataset, nonfinite_name, trial_settings
from sweeplab.objectives.transfer import plan_trial

__all__ = ["TorchMLPObjective", "build_model", "count_params", "predict"]

#: Rows per forward pass when evaluating or predicting; larger inputs are split in chunks
#: of this size (one pass for every dataset of ordinary size).
EVAL_CHUNK_ROWS = 1 << 16

#: ReduceLROnPlateau's improvement threshold, absolute, as Keras' ``min_delta=1e-4``.
PLATEAU_THRESHOLD = 1e-4

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,  # torch default negative_slope=0.01
    "gelu": nn.GELU,  # exact (erf) form, as Keras' default approximate=False
    "selu": nn.SELU,
}

_PROCESS_STATE: dict[str, bool] = {"interop_threads_set": False}


# --------------------------------------------------------------------------- model


def build_model(cfg: MLPConfig, n_features: int, n_outputs: int) -> nn.Module:
    """Build the MLP of ``cfg`` as an ``nn.Sequential`` (on CPU, torch's default init).

    Per width ``u`` in ``cfg.hidden_units``: ``Linear(prev, u)``, then ``BatchNorm1d(u)``
    when ``cfg.batch_norm``, then the activation, then ``Dropout(cfg.dropout)`` when
    ``cfg.dropout > 0``. Last comes ``Linear(prev, n_outputs)`` with no activation: it
    yields logits for classification (``CrossEntropyLoss`` applies the softmax) and the
    value for regression (``n_outputs == 1``). Draws from torch's global RNG, so seed it
    first for a reproducible init.

    Raises ValueError for an unknown activation or non-positive sizes.
    """
    if n_features < 1 or n_outputs < 1:
        raise ValueError(f"n_features and n_outputs must be >= 1, got n_features={n_features}, n_outputs={n_outputs}")
    try:
        activation = _ACTIVATIONS[cfg.activation]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {cfg.activation!r}") from None
    layers: list[nn.Module] = []
    prev = int(n_features)
    for units in cfg.hidden_units:
        layers.append(nn.Linear(prev, int(units)))
        if cfg.batch_norm:
            layers.append(nn.BatchNorm1d(int(units)))
        layers.append(activation())
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        prev = int(units)
    layers.append(nn.Linear(prev, int(n_outputs)))
    return nn.Sequential(*layers)


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters (weights and biases, BatchNorm's scale and shift).

    Buffers such as BatchNorm's running mean and variance are not counted (Keras'
    ``count_params`` would count them as non-trainable weights).
    """
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def predict(model: nn.Module, X: np.ndarray, task: str) -> np.ndarray:
    """Predict rows ``X`` (already scaled features) with ``model``.

    Runs in eval mode (dropout off, BatchNorm on running statistics) without autograd,
    on the model's device, and puts the model back in the train/eval mode it was in.
    Returns int64 class indices of shape ``(n,)`` for ``task == "classification"``, and
    float32 values of shape ``(n,)`` for ``"regression"``.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    device = _model_device(model)
    x = torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32), device=device)
    if x.ndim != 2:
        raise ValueError(f"X must be a 2-D array (rows x features), got shape {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            out = _forward_chunked(model, x)
            result = out.argmax(dim=1) if task == "classification" else out.reshape(-1)
            return result.cpu().numpy().copy()
    finally:
        model.train(was_training)


def _forward_chunked(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if x.shape[0] <= EVAL_CHUNK_ROWS:
        return model(x)
    return torch.cat([model(x[i : i + EVAL_CHUNK_ROWS]) for i in range(0, x.shape[0], EVAL_CHUNK_ROWS)])


# --------------------------------------------------------------------------- training pieces


def _make_optimizer(cfg: MLPConfig, params: list[nn.Parameter], device: torch.device) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` with ``lr=cfg.learning_rate`` and ``weight_decay`` (L2, all four).

    sgd uses ``momentum=cfg.momentum``; rmsprop keeps torch's default ``momentum=0``
    (cfg.momentum is not applied to it); adam and adagrad use torch's other defaults.
    On CPU the fused implementation is used where torch has one (adam, sgd, adagrad: up
    to 1.5x cheaper per step on small models), else the foreach one; on other devices
    torch picks its default (foreach on CUDA), since fused support differs per device and
    shows only at the first step.
    """
    lr = float(cfg.learning_rate)
    wd = float(cfg.weight_decay)
    if cfg.optimizer == "sgd":
        cls: Any = torch.optim.SGD
        kwargs: dict[str, Any] = {"lr": lr, "momentum": float(cfg.momentum), "weight_decay": wd}
    elif cfg.optimizer == "adam":
        cls, kwargs = torch.optim.Adam, {"lr": lr, "weight_decay": wd}
    elif cfg.optimizer == "rmsprop":
        cls, kwargs = torch.optim.RMSprop, {"lr": lr, "weight_decay": wd}
    elif cfg.optimizer == "adagrad":
        cls, kwargs = torch.optim.Adagrad, {"lr": lr, "weight_decay": wd}
    else:
        raise ValueError(f"optimizer must be one of ['sgd', 'adam', 'rmsprop', 'adagrad'], got {cfg.optimizer!r}")
    if device.type == "cpu":
        for impl in ({"fused": True}, {"foreach": True}):
            try:
                return cls(params, **kwargs, **impl)
            except (TypeError, RuntimeError, ValueError):
                continue  # no such implementation for this optimizer (rmsprop has no fused one)
    return cls(params, **kwargs)


def _make_scheduler(cfg: MLPConfig, optimizer: torch.optim.Optimizer) -> Any:
    """``None``, ``ExponentialLR(gamma=lr_decay_rate)`` or ``ReduceLROnPlateau`` on val_loss."""
    if cfg.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(cfg.lr_decay_rate))
    if cfg.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="min",
            factor=float(cfg.lr_factor),
            patience=int(cfg.lr_patience),
            min_lr=float(cfg.min_lr),
            threshold=PLATEAU_THRESHOLD,
            threshold_mode="abs",
        )
    return None


def _limit_threads(cpus: float) -> int:
    """Limit torch's intra-op threads to the trial's CPU share; inter-op once per process.

    ``set_num_interop_threads`` raises once inter-op parallel work has started in the
    process (or when it was set before), so it is tried only on the first trial.
    """
    n = max(1, int(cpus))
    torch.set_num_threads(n)
    if not _PROCESS_STATE["interop_threads_set"]:
        _PROCESS_STATE["interop_threads_set"] = True
        with contextlib.suppress(RuntimeError):
            torch.set_num_interop_threads(n)
    return n






def _seed_everything(seed: int) -> int:
    seed = int(seed) % (2**32)
    torch.manual_seed(seed)
    np.random.seed(seed)
    return seed


# --------------------------------------------------------------------------- objective


class TorchMLPObjective(BaseObjective):
    """Train an MLP with PyTorch for one trial.

    Contract of :meth:`run`:

    - ``ctx.params`` -> ``MLPConfig.from_params``; ``ctx.settings`` gives ``task``
      (defaults to ``ctx.dataset.task``), ``epochs`` (>= 1) and ``early_stopping``
      (``None`` or an object/mapping with ``patience``, ``min_delta`` = 0,
      ``monitor`` = ``"val_loss"``).
    - Threads: ``torch.set_num_threads(max(1, int(ctx.cpus)))``; inter-op threads are set
      once per process and only while torch still allows it. Device: ``cuda`` when
      ``ctx.gpus > 0`` and CUDA is available, else CPU.
    - Seeded: ``torch.manual_seed`` and ``np.random.seed`` with ``ctx.seed`` (mod 2**32);
      the per-epoch shuffle uses its own generator seeded the same way. Same context on
      CPU -> identical metrics (``train_seconds`` and ``latency_ms`` aside).
    - After every epoch ``ctx.reporter.report(epoch, metrics)`` with a 1-based epoch and
      metrics ``loss, accuracy, val_loss, val_accuracy, lr`` (classification) or
      ``loss, mae, val_loss, val_mae, lr`` (regression). Train metrics are averaged over
      the epoch's samples as the model was while training on them (train mode); val
      metrics come from the full validation set in eval mode; ``lr`` is the learning
      rate used during that epoch. :class:`~sweeplab.objectives.base.TrialPruned` from
      the reporter propagates.
    - A non-finite training loss raises ``FloatingPointError`` at the end of the epoch
      in which it happened (detected without per-batch syncs), before that epoch is
      reported; a non-finite validation loss likewise.
    - Early stopping: stop when the monitored metric (min for ``*loss``/``*mae``, max for
      ``*accuracy``) has not improved by more than ``min_delta`` for ``patience`` epochs.
    - Best weights are always restored at the end, with or without early stopping: the
      epoch with the best monitored metric (``val_loss`` without early stopping; the
      earliest on ties). The returned ``val_*`` and train metrics are that epoch's
      history entry, so ``val_loss`` is the minimum over the history when monitoring it.
    - Returns those metrics plus ``test_loss`` and ``test_accuracy``/``test_mae`` (best
      weights, when the dataset has test rows), ``best_epoch`` (1-based),
      ``epochs_trained``, ``n_params``, ``train_seconds`` and ``latency_ms`` (mean per-row
      predict latency on the validation rows, see :mod:`sweeplab.objectives.latency`).
    - ``init_from`` (``ctx.dataset.init_from`` set, see :mod:`sweeplab.objectives.transfer`):
      the source's architecture and hidden-layer weights, a new output layer, the first
      ``n_frozen_layers`` hidden layers frozen, ``finetune_learning_rate`` as learning rate;
      ``n_params`` then counts the whole network and ``n_trainable_params`` the trained part.

    After ``run`` (also after a pruned or failed one), ``self.model`` holds the model (in
    eval mode, best weights once run returned) and ``self.history`` one metrics dict per
    epoch trained (``history[i]`` is epoch ``i + 1``; the reported keys, no epoch key).
    """

    def __init__(self) -> None:
        self.model: nn.Module | None = None
        self.history: list[dict[str, float]] = []
        self.config: MLPConfig | None = None

    def warm_up(self) -> None:
        """Build an optimizer and take one step on a throw-away tensor.

        The first optimizer a process creates imports ``torch._dynamo`` (torch wraps
        ``Optimizer.__init__`` with a lazily imported dynamo guard): about a second that
        would otherwise land in the first trial. Draws no random numbers.
        """
        weight = nn.Parameter(torch.zeros(2, 2))
        optimizer = _make_optimizer(MLPConfig(hidden_units=(2,)), [weight], torch.device("cpu"))
        weight.sum().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def run(self, ctx: TrialContext) -> dict[str, float]:
        """Train and evaluate one trial; return final metrics (see the class docstring)."""
        params, transfer = plan_trial(ctx.params, ctx.dataset)  # init_from: the source's architecture
        cfg = MLPConfig.from_params(params)
        self.config = cfg
        self.model = None
        self.history = []
        ds = need_dataset(ctx.dataset, "torch")
        settings = ctx.settings

        s = trial_settings(settings, ds)
        task, epochs, classification, acc_name = s.task, s.epochs, s.classification, s.acc_name
        monitor, patience, min_delta, metric_names, sign = s.monitor, s.patience, s.min_delta, s.metric_names, s.sign

        _limit_threads(ctx.cpus)
        seed = _seed_everything(ctx.seed)
        device = torch.device("cuda" if ctx.gpus > 0 and torch.cuda.is_available() else "cpu")

        x_train, y_train = self._tensors(ds.X_train, ds.y_train, classification, device)
        x_val, y_val = self._tensors(ds.X_val, ds.y_val, classification, device)
        n_outputs = ds.n_outputs if classification else 1
        if classification and n_outputs < 2:
            n_outputs = int(max(np.max(ds.y_train), np.max(ds.y_val))) + 1

        model = build_model(cfg, ds.n_features, n_outputs).to(device)
        if transfer is not None:
            from sweeplab.objectives.transfer_torch import init_torch

            init_torch(model, transfer)  # source weights in, first n_frozen_layers frozen, new head
        self.model = model
        criterion: nn.Module = nn.CrossEntropyLoss() if classification else nn.MSELoss()
        optimizer = _make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad], device)
        scheduler = _make_scheduler(cfg, optimizer)
        shuffle_gen = torch.Generator(device="cpu")
        shuffle_gen.manual_seed(seed)

        n_train = int(x_train.shape[0])
        bounds = batch_bounds(n_train, int(cfg.batch_size), merge_singleton=cfg.batch_norm)
        zero_f = torch.zeros((), dtype=torch.float64, device=device)

        best_key = math.inf  # sign * monitored value of the best epoch so far
        ref_key = math.inf  # sign * value at the last improvement by more than min_delta
        best_epoch = 0
        best_state: dict[str, torch.Tensor] | None = None
        wait = 0
        epochs_trained = 0
        start = time.perf_counter()
        for epoch in range(1, epochs + 1):
            model.train()
            lr = float(optimizer.param_groups[0]["lr"])
            perm = torch.randperm(n_train, generator=shuffle_gen).to(device)
            xs, ys = x_train[perm], y_train[perm]
            loss_sum = zero_f.clone()
            stat_sum = zero_f.clone()  # correct predictions, or absolute errors
            for lo, hi in bounds:
                xb, yb = xs[lo:hi], ys[lo:hi]
                out = model(xb)
                if not classification:
                    out = out.squeeze(-1)
                loss = criterion(out, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    loss_sum.add_(loss.detach(), alpha=hi - lo)
                    if classification:
                        stat_sum.add_((out.argmax(dim=1) == yb).sum())
                    else:
                        stat_sum.add_((out - yb).abs().sum())
            val_loss_t, val_stat_t = _evaluate(model, criterion, x_val, y_val, classification)
            values = torch.stack([loss_sum / n_train, stat_sum / n_train, val_loss_t, val_stat_t]).tolist()
            epochs_trained = epoch
            if not math.isfinite(values[0]):
                raise FloatingPointError(
                    f"training loss became {nonfinite_name(values[0])} at epoch {epoch}; lower learning_rate "
                    f"(was {cfg.learning_rate:g} with {cfg.optimizer}) or use batch_norm / a smaller batch_size"
                )
            if not math.isfinite(values[2]):
                raise FloatingPointError(
                    f"validation loss became {nonfinite_name(values[2])} at epoch {epoch}; lower learning_rate "
                    f"(was {cfg.learning_rate:g} with {cfg.optimizer})"
                )
            metrics = dict(zip(metric_names, [*values, lr], strict=True))
            self.history.append(metrics)

            key = sign * metrics[monitor]
            if key < best_key:
                best_key, best_epoch = key, epoch
                best_state = _snapshot(model, best_state)
            if key < ref_key - min_delta:
                ref_key, wait = key, 0
            else:
                wait += 1

            ctx.reporter.report(epoch, dict(metrics))

            if scheduler is not None:
                if cfg.lr_schedule == "plateau":
                    scheduler.step(metrics["val_loss"])
                else:
                    scheduler.step()
            if s.early_stopping and wait >= max(1, patience):
                break
        train_seconds = time.perf_counter() - start

        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        best = self.history[best_epoch - 1]
        result: dict[str, float] = {
            "val_loss": best["val_loss"],
            f"val_{acc_name}": best[f"val_{acc_name}"],
            "loss": best["loss"],
            acc_name: best[acc_name],
        }
        if len(ds.y_test) > 0:
            x_test, y_test = self._tensors(ds.X_test, ds.y_test, classification, device)
            test_loss, test_stat = torch.stack(_evaluate(model, criterion, x_test, y_test, classification)).tolist()
            result["test_loss"] = test_loss
            result[f"test_{acc_name}"] = test_stat
        result.update(
            best_epoch=float(best_epoch),
            epochs_trained=float(epochs_trained),
            n_params=float(count_params(model)),
            train_seconds=float(train_seconds),
            latency_ms=predict_latency_ms(lambda: predict(model, ds.X_val, task), len(ds.y_val)),
        )
        if transfer is not None:  # n_params counts the whole network, frozen layers included
            result.update(n_params=result["n_params"] + transfer.frozen_params, n_trainable_params=result["n_params"])
        return result

    @staticmethod
    def _tensors(
        X: np.ndarray, y: np.ndarray, classification: bool, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features as float32 and targets as int64 (classes) or float32 (values) on ``device``.

        Zero-copy on CPU when the arrays already have those dtypes; never written to.
        """
        # Arrays from Ray's object store are read-only; they are never written to here,
        # so the zero-copy view is safe and torch's warning about it is noise.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
            y_np = np.asarray(y).reshape(-1)
            y_t = torch.from_numpy(np.ascontiguousarray(y_np, dtype=np.int64 if classification else np.float32))
        if x_t.ndim != 2 or x_t.shape[0] != y_t.shape[0]:
            raise DataError(
                f"features must be rows x columns matching the targets, got {tuple(x_t.shape)} and {len(y_t)}"
            )
        return x_t.to(device), y_t.to(device)




def _evaluate(
    model: nn.Module, criterion: nn.Module, x: torch.Tensor, y: torch.Tensor, classification: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss and accuracy (or MAE) over all rows, in eval mode, as 0-d tensors (no sync)."""
    model.eval()
    with torch.inference_mode():
        out = _forward_chunked(model, x)
        if classification:
            stat = (out.argmax(dim=1) == y).double().mean()
        else:
            out = out.squeeze(-1)
            stat = (out - y).abs().double().mean()
        loss = criterion(out, y).double()
    return loss, stat


def _snapshot(model: nn.Module, into: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Copy the model's state_dict into ``into`` (allocated on first use) and return it."""
    with torch.no_grad():
        state = model.state_dict()
        if into is None:
            return {k: v.detach().clone() for k, v in state.items()}
        for k, v in state.items():
            into[k].copy_(v)
    return into
