"""The MLP objective contract (:class:`sweeplab.objectives.mlp.MLPObjective`), run on every framework.

Each test runs once per backend (torch, keras) on small synthetic data and a few epochs;
what only one framework has (its layer classes, optimizers, threads) is tested in
``test_torch_mlp.py`` and ``test_keras_mlp.py``, the cross-framework numbers in
``test_framework_parity.py``.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sweeplab_mlp_kit import CLS, CLS_KEYS, REG, REG_KEYS, SMALL, PruneAt, ctx_for, make_cls_dataset, without_time

from sweeplab.objectives.base import NullReporter, TrialPruned
from sweeplab.objectives.config import LR_SCHEDULES, OPTIMIZERS, MLPConfig
from sweeplab.objectives.dataset import Dataset
from sweeplab.objectives.training import batch_bounds
from sweeplab.registry.names import MLP_FRAMEWORKS


@dataclass(frozen=True)
class Backend:
    """One framework's objective and model functions, called the same way."""

    name: str
    module: Any

    def objective(self) -> Any:
        return self.module.TorchMLPObjective() if self.name == "torch" else self.module.KerasMLPObjective()

    def build_model(self, cfg: MLPConfig, n_features: int, n_outputs: int) -> Any:
        args = (cfg, n_features, n_outputs) + (("classification",) if self.name == "keras" else ())
        return self.module.build_model(*args)

    def count_params(self, model: Any) -> int:
        return int(self.module.count_params(model))

    def predict(self, model: Any, X: np.ndarray, task: str) -> np.ndarray:
        return self.module.predict(model, X, task)

    def weights(self, model: Any) -> list[np.ndarray]:
        """Every weight and statistic of the model (torch: the state dict; Keras: ``get_weights``)."""
        if self.name == "torch":
            return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]
        return [np.array(w) for w in model.get_weights()]


@pytest.fixture(scope="module", params=MLP_FRAMEWORKS)
def backend(request: pytest.FixtureRequest) -> Backend:
    name = request.param
    pytest.importorskip({"torch": "torch", "keras": "tensorflow"}[name])
    return Backend(name, importlib.import_module(f"sweeplab.objectives.{name}_mlp"))


# --------------------------------------------------------------------------- the network


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        (MLPConfig(hidden_units=(64, 32, 16)), (10 * 64 + 64) + (64 * 32 + 32) + (32 * 16 + 16) + (16 * 3 + 3)),
        (MLPConfig(hidden_units=(64, 32, 16), batch_norm=True),
         (10 * 64 + 64) + (64 * 32 + 32) + (32 * 16 + 16) + (16 * 3 + 3) + 2 * (64 + 32 + 16)),
        (MLPConfig(hidden_units=(7,), batch_norm=True, dropout=0.2), (10 * 7 + 7) + 2 * 7 + (7 * 3 + 3)),
    ],
    ids=["plain", "batch_norm", "narrow"],
)
def test_count_params_is_the_plans(backend: Backend, cfg: MLPConfig, expected: int) -> None:
    # scale and shift are counted, BatchNorm's running statistics are not
    model = backend.build_model(cfg, n_features=10, n_outputs=3)
    assert backend.count_params(model) == expected == cfg.network(10, 3).n_params


def test_build_model_rejects_bad_sizes(backend: Backend) -> None:
    with pytest.raises(ValueError, match="n_features and n_outputs must be >= 1"):
        backend.build_model(MLPConfig(), n_features=0, n_outputs=2)


def test_predict_is_inference_mode_and_checks_its_input(backend: Backend) -> None:
    model = backend.build_model(MLPConfig(hidden_units=(8,), dropout=0.5), n_features=10, n_outputs=3)
    first = backend.predict(model, CLS.X_val, "classification")
    assert np.array_equal(first, backend.predict(model, CLS.X_val, "classification"))  # dropout is off
    with pytest.raises(ValueError, match="task must be"):
        backend.predict(model, CLS.X_val, "ranking")
    with pytest.raises(ValueError, match="2-D array"):
        backend.predict(model, CLS.X_val[0], "classification")


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_and_schedule_trains(backend: Backend, optimizer: str, schedule: str) -> None:
    params = {
        "hidden_units": [8],
        "optimizer": optimizer,
        "lr_schedule": schedule,
        "learning_rate": 0.01,
        "lr_patience": 1,
        "weight_decay": 1e-4,
    }
    obj = backend.objective()
    out = obj.run(ctx_for(params, dataset=SMALL, epochs=3))
    assert {"val_loss", "val_accuracy", "loss", "accuracy", "test_loss", "test_accuracy"} <= set(out)
    assert {"best_epoch", "epochs_trained", "n_params", "train_seconds"} <= set(out)
    assert all(math.isfinite(v) for v in out.values()), out
    assert out["epochs_trained"] == 3
    val_losses = [h["val_loss"] for h in obj.history]
    assert out["best_epoch"] == 1 + val_losses.index(min(val_losses))  # weights restored from the best val_loss
    assert out["n_params"] == backend.count_params(obj.model)
    assert obj.config == MLPConfig.from_params(params)
    lrs = [h["lr"] for h in obj.history]
    assert lrs[0] == pytest.approx(0.01)
    if schedule == "exponential":
        assert lrs == pytest.approx([0.01 * 0.95**i for i in range(3)])
        if backend.name == "keras":  # the policy's rate reached the optimizer (set before each epoch's fit)
            assert float(obj.model.optimizer.learning_rate) == pytest.approx(lrs[-1]) == pytest.approx(0.01 * 0.95**2)
    if schedule == "none":
        assert lrs == [0.01] * 3


def test_plateau_schedule_reduces_lr_when_val_loss_stalls(backend: Backend) -> None:
    # sgd with a tiny lr barely moves: val_loss stalls, and after lr_patience epochs without improvement
    # above the absolute threshold (epochs 2 and 3 > lr_patience=1) the lr is multiplied by lr_factor
    params = {
        "optimizer": "sgd",
        "learning_rate": 1e-6,
        "momentum": 0.0,
        "lr_schedule": "plateau",
        "lr_patience": 1,
        "lr_factor": 0.5,
        "min_lr": 1e-9,
    }
    obj = backend.objective()
    obj.run(ctx_for(params, epochs=4))
    lrs = [h["lr"] for h in obj.history]
    assert lrs == pytest.approx([1e-6, 1e-6, 1e-6, 5e-7])


def test_classification_learns_easy_problem(backend: Backend) -> None:
    ds = make_cls_dataset(n=400, n_train=280, n_val=80, class_sep=2.5)
    params = {"hidden_units": [32, 16], "optimizer": "adam", "learning_rate": 0.01, "batch_size": 32}
    obj = backend.objective()
    out = obj.run(ctx_for(params, dataset=ds, epochs=15))
    assert out["val_accuracy"] > 0.8
    assert out["test_accuracy"] > 0.7
    # predict() with the restored best weights reproduces the returned validation accuracy
    pred = backend.predict(obj.model, ds.X_val, "classification")
    assert pred.dtype == np.int64
    assert pred.shape == (len(ds.y_val),)
    assert float((pred == ds.y_val).mean()) == pytest.approx(out["val_accuracy"])


def test_regression_learns(backend: Backend) -> None:
    params = {"hidden_units": [32, 16], "optimizer": "adam", "learning_rate": 0.01, "batch_size": 16}
    reporter = NullReporter()
    obj = backend.objective()
    out = obj.run(ctx_for(params, dataset=REG, epochs=15, reporter=reporter))
    assert {"val_loss", "val_mae", "loss", "mae", "test_loss", "test_mae"} <= set(out)
    assert "val_accuracy" not in out
    assert "accuracy" not in out
    assert all(math.isfinite(v) for v in out.values())
    assert out["val_loss"] < 0.3  # targets are standardized: 1.0 is the constant predictor
    assert all(set(m) == REG_KEYS for _, m in reporter.history)
    pred = backend.predict(obj.model, REG.X_val, "regression")
    assert pred.dtype == np.float32
    assert pred.shape == (len(REG.y_val),)
    assert float(np.abs(pred - REG.y_val).mean()) == pytest.approx(out["val_mae"], rel=1e-4)
    assert float(((pred - REG.y_val) ** 2).mean()) == pytest.approx(out["val_loss"], rel=1e-4)


def test_deterministic_for_same_context_and_seed_dependent(backend: Backend) -> None:
    # dropout and batch norm on (their randomness must follow the seed too); the worker keeps one
    # objective per process, so the repeat runs on the same instance after other trials
    params = {"hidden_units": [16, 16], "dropout": 0.2, "batch_norm": True, "batch_size": 16, "optimizer": "adam"}
    obj = backend.objective()
    out_a = obj.run(ctx_for(params, epochs=3, seed=11))
    history_a = obj.history
    weights_a = backend.weights(obj.model)
    out_c = obj.run(ctx_for(params, epochs=3, seed=12))
    history_c = obj.history
    obj.run(ctx_for({"hidden_units": [12, 4], "optimizer": "sgd"}, dataset=SMALL, epochs=1, seed=4))
    out_b = obj.run(ctx_for(params, epochs=3, seed=11))
    assert without_time(out_a) == without_time(out_b)
    assert history_a == obj.history
    weights_b = backend.weights(obj.model)
    assert len(weights_a) == len(weights_b)
    for wa, wb in zip(weights_a, weights_b, strict=True):
        assert np.array_equal(wa, wb)
    assert without_time(out_a) != without_time(out_c)
    assert history_a != history_c


def test_reporter_gets_one_report_per_epoch(backend: Backend) -> None:
    reporter = NullReporter()
    obj = backend.objective()
    obj.run(ctx_for({}, epochs=4, reporter=reporter))
    assert [e for e, _ in reporter.history] == [1, 2, 3, 4]
    assert all(set(m) == CLS_KEYS for _, m in reporter.history)
    assert all(type(v) is float for _, m in reporter.history for v in m.values())
    assert [m for _, m in reporter.history] == obj.history
    assert all(0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["val_accuracy"] <= 1.0 for m in obj.history)
    # val metrics come from the full validation set (multiples of 1/60 here)
    assert all(round(m["val_accuracy"] * len(CLS.y_val), 6).is_integer() for m in obj.history)


def test_pruning_stops_training_and_propagates(backend: Backend) -> None:
    reporter = PruneAt(3)
    obj = backend.objective()
    with pytest.raises(TrialPruned) as info:
        obj.run(ctx_for({}, epochs=10, reporter=reporter))
    assert info.value.epoch == 3
    assert reporter.epochs == [1, 2, 3]
    assert len(obj.history) == 3
    assert obj.model is not None


def test_early_stopping_on_plateau_restores_best(backend: Backend) -> None:
    # a learning rate this small leaves val_loss flat: no improvement by min_delta after epoch 1
    params = {"optimizer": "sgd", "learning_rate": 1e-7, "momentum": 0.0}
    es = SimpleNamespace(patience=2, min_delta=1e-3, monitor="val_loss")
    obj = backend.objective()
    out = obj.run(ctx_for(params, epochs=30, early_stopping=es))
    assert out["epochs_trained"] == 3  # of 30
    assert len(obj.history) == 3
    losses = [h["val_loss"] for h in obj.history]
    assert out["val_loss"] == min(losses)
    assert out["best_epoch"] == losses.index(min(losses)) + 1


def test_early_stopping_after_overfitting_restores_best_weights(backend: Backend) -> None:
    params = {"hidden_units": [128, 128], "optimizer": "adam", "learning_rate": 0.03, "batch_size": 16}
    es = {"patience": 3, "min_delta": 0.0}  # a mapping works too; monitor defaults to val_loss
    obj = backend.objective()
    out = obj.run(ctx_for(params, epochs=40, early_stopping=es))
    losses = [h["val_loss"] for h in obj.history]
    assert out["epochs_trained"] < 40
    assert out["val_loss"] == min(losses)
    best = int(out["best_epoch"])
    assert len(losses) - best == 3  # stopped after `patience` epochs without improvement
    assert out["val_accuracy"] == obj.history[best - 1]["val_accuracy"]
    assert out["loss"] == obj.history[best - 1]["loss"]
    # the model holds the best epoch's weights: its validation accuracy is that epoch's
    pred = backend.predict(obj.model, CLS.X_val, "classification")
    assert float((pred == CLS.y_val).mean()) == pytest.approx(out["val_accuracy"])


def test_best_weights_restored_without_early_stopping_and_accuracy_monitor(backend: Backend) -> None:
    params = {"hidden_units": [32], "optimizer": "adam", "learning_rate": 0.05, "batch_size": 16}
    obj = backend.objective()
    out = obj.run(ctx_for(params, epochs=6))
    assert out["epochs_trained"] == 6
    assert out["val_loss"] == min(h["val_loss"] for h in obj.history)
    es = SimpleNamespace(patience=100, min_delta=0.0, monitor="val_accuracy")
    out = obj.run(ctx_for(params, epochs=6, early_stopping=es))
    accs = [h["val_accuracy"] for h in obj.history]
    assert out["val_accuracy"] == max(accs)
    assert out["best_epoch"] == accs.index(max(accs)) + 1  # the earliest on ties
    pred = backend.predict(obj.model, CLS.X_val, "classification")
    assert float((pred == CLS.y_val).mean()) == pytest.approx(out["val_accuracy"])


def test_early_stopping_monitor_must_exist(backend: Backend) -> None:
    es = SimpleNamespace(patience=2, min_delta=0.0, monitor="val_accuracy")
    with pytest.raises(ValueError, match=r"early_stopping\.monitor must be one of"):
        backend.objective().run(ctx_for({}, dataset=REG, early_stopping=es))


@pytest.mark.parametrize("dataset", [CLS, REG], ids=["classification", "regression"])
def test_huge_learning_rate_raises_floating_point_error(backend: Backend, dataset: Dataset) -> None:
    params = {"optimizer": "sgd", "learning_rate": 1e6}
    reporter = NullReporter()
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) at epoch \d+; lower learning_rate"):
        backend.objective().run(ctx_for(params, dataset=dataset, epochs=20, reporter=reporter))
    assert all(math.isfinite(m["loss"]) for _, m in reporter.history)  # the bad epoch is never reported


def test_batch_norm_with_single_row_last_batch_and_no_test_part(backend: Backend) -> None:
    assert batch_bounds(201, 50, merge_singleton=True)[-1] == (150, 201)
    assert batch_bounds(201, 50, merge_singleton=False)[-1] == (200, 201)
    ds = make_cls_dataset(n=300, n_train=201, n_val=60, test=False)
    out = backend.objective().run(ctx_for({"batch_norm": True, "batch_size": 50}, dataset=ds, epochs=2))
    assert not any(k.startswith("test_") for k in out)
    assert math.isfinite(out["val_loss"])
