"""The PyTorch objective: trains one network per trial, an MLP or a CNN (``objective.model``).

This module imports torch at its top, so nothing imports it at package import time: the
worker loads it lazily (``framework: torch``) and keeps it for every later trial of the
process. The contract (network, metrics, epoch policy, returned values) is
:class:`~sweeplab.objectives.mlp.MLPObjective`'s; here, in short:

- model: the plan (:class:`~sweeplab.spaces.architecture.MLPPlan` or
  :class:`~sweeplab.spaces.cnn.CNNPlan`) as an ``nn.Sequential``: ``Linear``,
  ``BatchNorm1d``, the activation, ``Dropout``, and for a CNN's convolution part the
  modules of :mod:`sweeplab.objectives.torch_cnn`;
- loss: ``CrossEntropyLoss`` on logits, or ``MSELoss``;
- mini-batches: the training tensors are permuted once per epoch with a
  ``torch.Generator`` seeded from the trial's seed and sliced into ``batch_size`` rows;
  no sample is dropped (no ``DataLoader``, no worker processes);
- per-epoch metrics are accumulated on tensors and read back with one device sync per
  epoch; validation is one forward pass in eval mode.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from sweeplab.objectives import torch_cnn
from sweeplab.objectives.config import MLPConfig, NetworkConfig
from sweeplab.objectives.dataset import Dataset
from sweeplab.objectives.latency import predict_latency_ms
from sweeplab.objectives.mlp import FoldLearner, MLPObjective, MLPTrial
from sweeplab.objectives.training import batch_bounds, prediction_rows, training_arrays
from sweeplab.spaces.architecture import LayerPlan, NetworkPlan

__all__ = ["TorchMLPObjective", "build_model", "build_network", "count_params", "predict"]

#: Rows per forward pass when evaluating or predicting; larger inputs are split in chunks
#: of this size (one pass for every dataset of ordinary size).
EVAL_CHUNK_ROWS = 1 << 16

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


def _layer(layer: LayerPlan) -> nn.Module:
    if torch_cnn.translates(layer):
        return torch_cnn.layer(layer)
    if layer.kind == "dense":
        return nn.Linear(layer.fan_in, layer.units)
    if layer.kind == "batch_norm":
        return nn.BatchNorm1d(layer.units)
    if layer.kind == "dropout":
        return nn.Dropout(layer.rate)
    return _ACTIVATIONS[layer.activation]()


def build_network(plan: NetworkPlan) -> nn.Sequential:
    """The layers of ``plan`` as an ``nn.Sequential`` (on CPU, torch's default init).

    The output ``Linear`` has no activation: logits for classification
    (``CrossEntropyLoss`` applies the softmax), the value for regression. A plan on
    images (``input_shape`` ``(H, W, C)``) starts with
    :class:`~sweeplab.objectives.torch_cnn.ChannelsFirst`, so the network takes images
    channels last, as the dataset holds them. Draws from torch's global RNG, so seed it
    first for a reproducible init.
    """
    adapt = [torch_cnn.ChannelsFirst()] if len(plan.input_shape) == 3 else []
    return nn.Sequential(*adapt, *(_layer(layer) for layer in plan.layers))


def build_model(cfg: MLPConfig, n_features: int, n_outputs: int) -> nn.Sequential:
    """:func:`build_network` of ``cfg.network(n_features, n_outputs)``.

    Raises ValueError for an unknown activation or non-positive sizes.
    """
    return build_network(cfg.network(n_features, n_outputs))


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
    """Predict rows ``X`` (already scaled features; images ``(n, H, W, C)`` for a CNN) with ``model``.

    Runs in eval mode (dropout off, BatchNorm on running statistics) without autograd,
    on the model's device, and puts the model back in the train/eval mode it was in.
    Returns int64 class indices of shape ``(n,)`` for ``task == "classification"``, and
    float32 values of shape ``(n,)`` for ``"regression"``.
    """
    x = torch.as_tensor(prediction_rows(X, task), device=_model_device(model))
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


def _make_optimizer(cfg: NetworkConfig, params: list[nn.Parameter], device: torch.device) -> torch.optim.Optimizer:
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


# --------------------------------------------------------------------------- objective


class TorchMLPObjective(MLPObjective):
    """Train a network (any model family) with PyTorch for one trial (contract: :class:`.MLPObjective`).

    - Threads: ``torch.set_num_threads(max(1, int(ctx.cpus)))``; inter-op threads are set
      once per process and only while torch still allows it. Device: ``cuda`` when
      ``ctx.gpus > 0`` and CUDA is available, else CPU.
    - Seeded: ``torch.manual_seed`` and ``np.random.seed`` with the trial's seed; the
      per-epoch shuffle uses its own generator seeded the same way.
    - A non-finite training loss is detected at the end of its epoch, without per-batch
      syncs. ``self.model`` is left in eval mode.
    """

    framework = "torch"

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

    def _begin(self, t: MLPTrial) -> None:
        _limit_threads(t.cpus)
        torch.manual_seed(t.seed)
        np.random.seed(t.seed)

    def _learner(self, t: MLPTrial, fold: Dataset, seed: int) -> FoldLearner:
        return _TorchLearner(t, fold, seed)

def _tensors(
        X: np.ndarray, y: np.ndarray, classification: bool, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~sweeplab.objectives.training.training_arrays` as tensors on ``device`` (zero-copy on CPU)."""
    x, y_np = training_arrays(X, y, classification)
    # Arrays from Ray's object store are read-only; they are never written to here,
    # so the zero-copy view is safe and torch's warning about it is noise.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(x).to(device), torch.from_numpy(y_np).to(device)


class _TorchLearner(FoldLearner):
    """One torch model of a trial and its training state (optimizer, shuffle generator, best weights)."""

    def __init__(self, t: MLPTrial, fold: Dataset, seed: int) -> None:
        cfg = t.cfg
        self.classification = t.settings.classification
        self.task = t.settings.task
        self.device = torch.device("cuda" if t.gpus > 0 and torch.cuda.is_available() else "cpu")
        self.x_train, self.y_train = _tensors(fold.X_train, fold.y_train, self.classification, self.device)
        self.x_val, self.y_val = _tensors(fold.X_val, fold.y_val, self.classification, self.device)
        model = build_network(t.plan).to(self.device)
        if t.transfer is not None:
            from sweeplab.objectives.transfer_torch import init_torch

            init_torch(model, t.transfer)  # source weights in, first n_frozen_layers frozen, new head
        self.model = model
        self.criterion: nn.Module = nn.CrossEntropyLoss() if self.classification else nn.MSELoss()
        self.optimizer = _make_optimizer(cfg, [p for p in model.parameters() if p.requires_grad], self.device)
        self.shuffle_gen = torch.Generator(device="cpu")
        self.shuffle_gen.manual_seed(seed)
        self.n_train = int(self.x_train.shape[0])
        self.bounds = batch_bounds(self.n_train, int(cfg.batch_size), merge_singleton=cfg.batch_norm)
        self.zero_f = torch.zeros((), dtype=torch.float64, device=self.device)
        self.best_state: dict[str, torch.Tensor] | None = None

    def train_epoch(self, epoch: int, lr: float) -> tuple[float, float]:
        model, optimizer, criterion, classification = self.model, self.optimizer, self.criterion, self.classification
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        perm = torch.randperm(self.n_train, generator=self.shuffle_gen).to(self.device)
        xs, ys = self.x_train[perm], self.y_train[perm]
        loss_sum = self.zero_f.clone()
        stat_sum = self.zero_f.clone()  # correct predictions, or absolute errors
        for lo, hi in self.bounds:
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
        loss_mean, stat_mean = torch.stack([loss_sum / self.n_train, stat_sum / self.n_train]).tolist()
        return float(loss_mean), float(stat_mean)

    def validate(self) -> tuple[float, float]:
        val_loss, val_stat = torch.stack(_evaluate(self.model, self.criterion, self.x_val, self.y_val,
                                                   self.classification)).tolist()
        return float(val_loss), float(val_stat)

    def keep_best(self) -> None:
        self.best_state = _snapshot(self.model, self.best_state)

    def finish(self) -> None:
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        self.model.eval()

    def test(self, dataset: Dataset) -> tuple[float, float] | None:
        if len(dataset.y_test) == 0:
            return None
        x_test, y_test = _tensors(dataset.X_test, dataset.y_test, self.classification, self.device)
        test_loss, test_stat = torch.stack(_evaluate(self.model, self.criterion, x_test, y_test,
                                                     self.classification)).tolist()
        return float(test_loss), float(test_stat)

    def latency_ms(self, X: Any) -> float:
        return predict_latency_ms(lambda: predict(self.model, X, self.task), len(X))


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
