"""Tests of the PyTorch MLP objective (small synthetic data, a few epochs)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.datasets import make_classification, make_regression
from sklearn.preprocessing import StandardScaler
from torch import nn

from sweeplab.objectives.base import NullReporter, TrialContext, TrialPruned
from sweeplab.objectives.config import ACTIVATIONS, LR_SCHEDULES, OPTIMIZERS, MLPConfig
from sweeplab.objectives.dataset import Dataset
from sweeplab.objectives.torch_mlp import TorchMLPObjective, _make_optimizer, build_model, count_params, predict

CLS_KEYS = {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
REG_KEYS = {"loss", "mae", "val_loss", "val_mae", "lr"}


def _split(X: np.ndarray, y: np.ndarray, n_train: int, n_val: int) -> tuple[np.ndarray, ...]:
    scaler = StandardScaler().fit(X[:n_train])
    X = scaler.transform(X).astype(np.float32)
    return (
        X[:n_train],
        y[:n_train],
        X[n_train : n_train + n_val],
        y[n_train : n_train + n_val],
        X[n_train + n_val :],
        y[n_train + n_val :],
    )


def make_cls_dataset(n: int = 300, n_train: int = 200, n_val: int = 60, class_sep: float = 1.0, test: bool = True):
    X, y = make_classification(
        n_samples=n, n_features=10, n_informative=6, n_redundant=2, n_classes=3, class_sep=class_sep, random_state=0
    )
    Xtr, ytr, Xva, yva, Xte, yte = _split(X, y.astype(np.int64), n_train, n_val)
    if not test:
        Xte, yte = Xte[:0], yte[:0]
    return Dataset(
        task="classification",
        X_train=Xtr,
        y_train=ytr,
        X_val=Xva,
        y_val=yva,
        X_test=Xte,
        y_test=yte,
        feature_names=tuple(f"x{i}" for i in range(10)),
        class_labels=(0, 1, 2),
        name="cls",
    )


def make_reg_dataset(n: int = 300, n_train: int = 200, n_val: int = 60) -> Dataset:
    X, y = make_regression(n_samples=n, n_features=8, n_informative=5, noise=5.0, random_state=0)
    y = ((y - y[:n_train].mean()) / y[:n_train].std()).astype(np.float32)
    Xtr, ytr, Xva, yva, Xte, yte = _split(X, y, n_train, n_val)
    return Dataset("regression", Xtr, ytr, Xva, yva, Xte, yte, tuple(f"x{i}" for i in range(8)), name="reg")


CLS = make_cls_dataset()
REG = make_reg_dataset()


def settings(task: str = "classification", epochs: int = 3, early_stopping: Any = None) -> SimpleNamespace:
    return SimpleNamespace(task=task, epochs=epochs, early_stopping=early_stopping)


def ctx_for(
    params: Mapping[str, Any] | None = None,
    *,
    dataset: Dataset = CLS,
    epochs: int = 3,
    seed: int = 7,
    reporter: Any = None,
    early_stopping: Any = None,
    cpus: float = 1.0,
) -> TrialContext:
    return TrialContext(
        params=dict(params or {}),
        dataset=dataset,
        seed=seed,
        reporter=reporter if reporter is not None else NullReporter(),
        settings=settings(dataset.task, epochs, early_stopping),
        cpus=cpus,
    )


def without_time(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in ("train_seconds", "latency_ms")}  # wall-clock times


# --------------------------------------------------------------------------- model building


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize(("batch_norm", "dropout"), [(False, 0.0), (True, 0.0), (False, 0.3), (True, 0.25)])
def test_build_model_layers(activation: str, batch_norm: bool, dropout: float) -> None:
    cfg = MLPConfig(hidden_units=(16, 8), batch_norm=batch_norm, dropout=dropout, activation=activation)
    model = build_model(cfg, n_features=5, n_outputs=3)
    act_cls = {
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        "elu": nn.ELU,
        "leaky_relu": nn.LeakyReLU,
        "gelu": nn.GELU,
        "selu": nn.SELU,
    }[activation]
    expected: list[type[nn.Module]] = []
    for _ in cfg.hidden_units:
        expected.append(nn.Linear)
        if batch_norm:
            expected.append(nn.BatchNorm1d)
        expected.append(act_cls)
        if dropout > 0:
            expected.append(nn.Dropout)
    expected.append(nn.Linear)
    layers = list(model.children())
    assert [type(m) for m in layers] == expected
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 16), (16, 8), (8, 3)]
    assert [m.num_features for m in layers if isinstance(m, nn.BatchNorm1d)] == ([16, 8] if batch_norm else [])
    assert all(m.p == dropout for m in layers if isinstance(m, nn.Dropout))
    assert model(torch.zeros(4, 5)).shape == (4, 3)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_count_params_funnel(batch_norm: bool) -> None:
    cfg = MLPConfig(hidden_units=(64, 32, 16), batch_norm=batch_norm)
    model = build_model(cfg, n_features=10, n_outputs=3)
    expected = (10 * 64 + 64) + (64 * 32 + 32) + (32 * 16 + 16) + (16 * 3 + 3)
    if batch_norm:
        expected += 2 * (64 + 32 + 16)  # scale and shift; running stats are buffers
    assert count_params(model) == expected == sum(p.numel() for p in model.parameters())


def test_build_model_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="n_features and n_outputs must be >= 1"):
        build_model(MLPConfig(), n_features=0, n_outputs=2)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_and_schedule_trains(optimizer: str, schedule: str) -> None:
    params = {"optimizer": optimizer, "lr_schedule": schedule, "learning_rate": 0.01, "lr_patience": 1}
    obj = TorchMLPObjective()
    out = obj.run(ctx_for(params, epochs=4))
    assert {"val_loss", "val_accuracy", "loss", "accuracy", "test_loss", "test_accuracy"} <= set(out)
    assert {"best_epoch", "epochs_trained", "n_params", "train_seconds"} <= set(out)
    assert all(math.isfinite(v) for v in out.values()), out
    assert out["epochs_trained"] == 4
    val_losses = [h["val_loss"] for h in obj.history]
    assert out["best_epoch"] == 1 + val_losses.index(min(val_losses))  # weights restored from the best val_loss
    assert out["n_params"] == count_params(obj.model)
    lrs = [h["lr"] for h in obj.history]
    assert lrs[0] == pytest.approx(0.01)
    if schedule == "exponential":
        assert lrs == pytest.approx([0.01 * 0.95**i for i in range(4)])
    if schedule == "none":
        assert lrs == [0.01] * 4


@pytest.mark.parametrize(
    ("name", "cls", "momentum"),
    [
        ("sgd", torch.optim.SGD, 0.8),
        ("adam", torch.optim.Adam, None),
        ("rmsprop", torch.optim.RMSprop, 0.0),  # cfg.momentum is not applied to rmsprop
        ("adagrad", torch.optim.Adagrad, None),
    ],
)
def test_optimizer_hyperparameters(name: str, cls: type, momentum: float | None) -> None:
    cfg = MLPConfig(optimizer=name, learning_rate=0.02, momentum=0.8, weight_decay=1e-4)
    model = build_model(cfg, n_features=4, n_outputs=2)
    opt = _make_optimizer(cfg, list(model.parameters()), torch.device("cpu"))
    assert type(opt) is cls
    group = opt.param_groups[0]
    assert group["lr"] == 0.02
    assert group["weight_decay"] == 1e-4
    if momentum is not None:
        assert group["momentum"] == momentum


def test_plateau_schedule_reduces_lr_when_val_loss_stalls() -> None:
    # sgd with a tiny lr barely moves: val_loss stalls, and after lr_patience epochs without improvement
    # (epochs 2 and 3 > lr_patience=1) the lr is multiplied by lr_factor
    params = {
        "optimizer": "sgd",
        "learning_rate": 1e-6,
        "momentum": 0.0,
        "lr_schedule": "plateau",
        "lr_patience": 1,
        "lr_factor": 0.5,
        "min_lr": 1e-9,
    }
    obj = TorchMLPObjective()
    obj.run(ctx_for(params, epochs=4))
    lrs = [h["lr"] for h in obj.history]
    assert lrs == pytest.approx([1e-6, 1e-6, 1e-6, 5e-7])


def test_classification_learns_easy_problem() -> None:
    ds = make_cls_dataset(n=400, n_train=280, n_val=80, class_sep=2.5)
    params = {"hidden_units": [32, 16], "optimizer": "adam", "learning_rate": 0.01, "batch_size": 32}
    obj = TorchMLPObjective()
    out = obj.run(ctx_for(params, dataset=ds, epochs=15))
    assert out["val_accuracy"] > 0.8
    assert out["test_accuracy"] > 0.7
    # predict() with the restored best weights reproduces the returned validation accuracy
    pred = predict(obj.model, ds.X_val, "classification")
    assert pred.dtype == np.int64
    assert pred.shape == (len(ds.y_val),)
    assert float((pred == ds.y_val).mean()) == pytest.approx(out["val_accuracy"])


def test_regression_learns() -> None:
    params = {"hidden_units": [32, 16], "optimizer": "adam", "learning_rate": 0.01, "batch_size": 16}
    reporter = NullReporter()
    obj = TorchMLPObjective()
    out = obj.run(ctx_for(params, dataset=REG, epochs=15, reporter=reporter))
    assert {"val_loss", "val_mae", "loss", "mae", "test_loss", "test_mae"} <= set(out)
    assert "val_accuracy" not in out
    assert "accuracy" not in out
    assert all(math.isfinite(v) for v in out.values())
    assert out["val_loss"] < 0.3  # targets are standardized: 1.0 is the constant predictor
    assert all(set(m) == REG_KEYS for _, m in reporter.history)
    pred = predict(obj.model, REG.X_val, "regression")
    assert pred.dtype == np.float32
    assert pred.shape == (len(REG.y_val),)
    assert float(np.abs(pred - REG.y_val).mean()) == pytest.approx(out["val_mae"], rel=1e-4)


def test_deterministic_for_same_context_and_seed_dependent() -> None:
    params = {"hidden_units": [16, 16], "dropout": 0.2, "batch_norm": True, "batch_size": 16, "optimizer": "adam"}
    a, b, c = TorchMLPObjective(), TorchMLPObjective(), TorchMLPObjective()
    out_a = a.run(ctx_for(params, epochs=4, seed=11))
    out_b = b.run(ctx_for(params, epochs=4, seed=11))
    out_c = c.run(ctx_for(params, epochs=4, seed=12))
    assert without_time(out_a) == without_time(out_b)
    assert a.history == b.history
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert without_time(out_a) != without_time(out_c)
    assert a.history != c.history


def test_reporter_gets_one_report_per_epoch() -> None:
    reporter = NullReporter()
    obj = TorchMLPObjective()
    obj.run(ctx_for({}, epochs=5, reporter=reporter))
    assert [e for e, _ in reporter.history] == [1, 2, 3, 4, 5]
    assert all(set(m) == CLS_KEYS for _, m in reporter.history)
    assert all(isinstance(v, float) for _, m in reporter.history for v in m.values())
    assert [m for _, m in reporter.history] == obj.history
    assert all(0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["val_accuracy"] <= 1.0 for m in obj.history)


class PruneAt:
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.epochs: list[int] = []

    def report(self, epoch: int, metrics: Mapping[str, float]) -> None:
        assert set(metrics) == CLS_KEYS
        self.epochs.append(epoch)
        if epoch >= self.epoch:
            raise TrialPruned(epoch)


def test_pruning_stops_training_and_propagates() -> None:
    reporter = PruneAt(3)
    obj = TorchMLPObjective()
    with pytest.raises(TrialPruned) as info:
        obj.run(ctx_for({}, epochs=10, reporter=reporter))
    assert info.value.epoch == 3
    assert reporter.epochs == [1, 2, 3]
    assert len(obj.history) == 3
    assert obj.model is not None


def test_early_stopping_on_plateau_restores_best() -> None:
    # a learning rate this small leaves val_loss flat: no improvement by min_delta after epoch 1
    params = {"optimizer": "sgd", "learning_rate": 1e-7, "momentum": 0.0}
    es = SimpleNamespace(patience=2, min_delta=1e-3, monitor="val_loss")
    obj = TorchMLPObjective()
    out = obj.run(ctx_for(params, epochs=30, early_stopping=es))
    assert out["epochs_trained"] == 3  # of 30
    assert len(obj.history) == 3
    losses = [h["val_loss"] for h in obj.history]
    assert out["val_loss"] == min(losses)
    assert out["best_epoch"] == losses.index(min(losses)) + 1


def test_early_stopping_after_overfitting_restores_best_weights() -> None:
    params = {"hidden_units": [128, 128], "optimizer": "adam", "learning_rate": 0.03, "batch_size": 16}
    es = {"patience": 3, "min_delta": 0.0}  # a mapping works too; monitor defaults to val_loss
    obj = TorchMLPObjective()
    out = obj.run(ctx_for(params, epochs=40, early_stopping=es))
    losses = [h["val_loss"] for h in obj.history]
    assert out["epochs_trained"] < 40
    assert out["val_loss"] == min(losses)
    best = int(out["best_epoch"])
    assert len(losses) - best == 3  # stopped after `patience` epochs without improvement
    assert out["val_accuracy"] == obj.history[best - 1]["val_accuracy"]
    assert out["loss"] == obj.history[best - 1]["loss"]
    # the model holds the best epoch's weights: its validation accuracy is that epoch's
    pred = predict(obj.model, CLS.X_val, "classification")
    assert float((pred == CLS.y_val).mean()) == pytest.approx(out["val_accuracy"])


def test_best_weights_restored_without_early_stopping_and_accuracy_monitor() -> None:
    params = {"hidden_units": [64], "optimizer": "adam", "learning_rate": 0.05, "batch_size": 8}
    obj = TorchMLPObjective()
    out = obj.run(ctx_for(params, epochs=8))
    assert out["epochs_trained"] == 8
    assert out["val_loss"] == min(h["val_loss"] for h in obj.history)
    es = SimpleNamespace(patience=100, min_delta=0.0, monitor="val_accuracy")
    out = obj.run(ctx_for(params, epochs=8, early_stopping=es))
    assert out["val_accuracy"] == max(h["val_accuracy"] for h in obj.history)


def test_early_stopping_monitor_must_exist() -> None:
    es = SimpleNamespace(patience=2, min_delta=0.0, monitor="val_accuracy")
    with pytest.raises(ValueError, match=r"early_stopping\.monitor must be one of"):
        TorchMLPObjective().run(ctx_for({}, dataset=REG, early_stopping=es))


@pytest.mark.parametrize("dataset", [CLS, REG], ids=["classification", "regression"])
def test_huge_learning_rate_raises_floating_point_error(dataset: Dataset) -> None:
    params = {"optimizer": "sgd", "learning_rate": 1e6}
    reporter = NullReporter()
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) at epoch \d+; lower learning_rate"):
        TorchMLPObjective().run(ctx_for(params, dataset=dataset, epochs=20, reporter=reporter))
    assert all(math.isfinite(m["loss"]) for _, m in reporter.history)  # the bad epoch is never reported


def test_set_num_threads_respected() -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        TorchMLPObjective().run(ctx_for({}, epochs=1, cpus=1))
        assert torch.get_num_threads() == 1
        TorchMLPObjective().run(ctx_for({}, epochs=1, cpus=0.5))
        assert torch.get_num_threads() == 1
        TorchMLPObjective().run(ctx_for({}, epochs=1, cpus=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_batch_norm_with_single_row_last_batch_and_no_test_part() -> None:
    ds = make_cls_dataset(n=300, n_train=201, n_val=60, test=False)
    params = {"batch_norm": True, "batch_size": 50}
    out = TorchMLPObjective().run(ctx_for(params, dataset=ds, epochs=2))
    assert not any(k.startswith("test_") for k in out)
    assert math.isfinite(out["val_loss"])


def test_predict_restores_training_mode() -> None:
    model = build_model(MLPConfig(hidden_units=(8,), dropout=0.5), n_features=10, n_outputs=3)
    model.train()
    first = predict(model, CLS.X_val, "classification")
    assert model.training
    assert np.array_equal(first, predict(model, CLS.X_val, "classification"))  # dropout is off
    with pytest.raises(ValueError, match="task must be"):
        predict(model, CLS.X_val, "ranking")
