"""Tests of the Keras MLP objective (small synthetic data, a few epochs): the torch objective's contract."""

from __future__ import annotations

import gc
import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.preprocessing import StandardScaler

from sweeplab.objectives import epochs
from sweeplab.objectives.base import NullReporter, TrialContext, TrialPruned
from sweeplab.objectives.config import ACTIVATIONS, LR_SCHEDULES, OPTIMIZERS, MLPConfig
from sweeplab.objectives.dataset import Dataset
from sweeplab.objectives.training import batch_bounds

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from sweeplab.objectives import keras_mlp  # noqa: E402
from sweeplab.objectives.keras_mlp import (  # noqa: E402
    KerasMLPObjective,
    build_model,
    count_params,
    make_optimizer,
    predict,
)

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


def make_cls_dataset(
    n: int = 300, n_train: int = 200, n_val: int = 60, class_sep: float = 1.0, test: bool = True
) -> Dataset:
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
SMALL = make_cls_dataset(n=200, n_train=120, n_val=40)


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
        settings=SimpleNamespace(task=dataset.task, epochs=epochs, early_stopping=early_stopping),
        cpus=cpus,
    )


def without_time(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k not in ("train_seconds", "latency_ms")}  # wall-clock times


# --------------------------------------------------------------------------- model building

_BN_DROPOUT = [(False, 0.0), (True, 0.0), (False, 0.3), (True, 0.25)]


@pytest.mark.parametrize(
    ("activation", "batch_norm", "dropout"),
    [(act, *_BN_DROPOUT[i % len(_BN_DROPOUT)]) for i, act in enumerate(ACTIVATIONS)] + [("relu", True, 0.25)],
)
def test_build_model_layers(activation: str, batch_norm: bool, dropout: float) -> None:
    cfg = MLPConfig(hidden_units=(16, 8), batch_norm=batch_norm, dropout=dropout, activation=activation)
    model = build_model(cfg, n_features=5, n_outputs=3, task="classification")
    act_cls = keras.layers.LeakyReLU if activation == "leaky_relu" else keras.layers.Activation
    expected: list[type] = []
    for _ in cfg.hidden_units:
        expected.append(keras.layers.Dense)
        if batch_norm:
            expected.append(keras.layers.BatchNormalization)
        expected.append(act_cls)
        if dropout > 0:
            expected.append(keras.layers.Dropout)
    expected.append(keras.layers.Dense)
    assert [type(layer) for layer in model.layers] == expected
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(d.kernel.shape[0], d.units) for d in dense] == [(5, 16), (16, 8), (8, 3)]
    assert all(d.activation is keras.activations.linear for d in dense)  # logits out, activations separate
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert [bn.gamma.shape[0] for bn in bns] == ([16, 8] if batch_norm else [])
    assert all(bn.momentum == 0.9 and bn.epsilon == 1e-5 for bn in bns)  # torch's BatchNorm1d defaults
    assert all(d.rate == dropout for d in model.layers if isinstance(d, keras.layers.Dropout))
    acts = [layer for layer in model.layers if isinstance(layer, act_cls)]
    assert len(acts) == 2
    if activation == "leaky_relu":
        assert all(a.negative_slope == pytest.approx(0.01) for a in acts)
    else:
        assert all(a.activation is getattr(keras.activations, activation) for a in acts)
    assert tuple(model(np.zeros((4, 5), np.float32), training=False).shape) == (4, 3)
    assert model.compiled


def test_build_model_regression_and_bad_input() -> None:
    model = build_model(MLPConfig(hidden_units=(8,)), n_features=4, n_outputs=1, task="regression")
    assert model.layers[-1].name == "value"
    assert isinstance(model.loss, keras.losses.MeanSquaredError)
    with pytest.raises(ValueError, match="n_features and n_outputs must be >= 1"):
        build_model(MLPConfig(), n_features=0, n_outputs=2, task="classification")
    with pytest.raises(ValueError, match="task must be 'classification' or 'regression'"):
        build_model(MLPConfig(), n_features=3, n_outputs=2, task="ranking")


def test_torch_like_initialization() -> None:
    keras.utils.set_random_seed(0)
    model = build_model(MLPConfig(hidden_units=(400,)), n_features=25, n_outputs=2, task="classification")
    kernel, bias = (np.asarray(w) for w in model.layers[0].get_weights())
    bound = 1 / math.sqrt(25)  # torch Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for kernel and bias
    assert np.abs(kernel).max() <= bound
    assert np.abs(bias).max() <= bound
    assert np.abs(kernel).max() > 0.95 * bound
    assert np.abs(bias).max() > 0.9 * bound  # biases are not zero as in Keras' default


@pytest.mark.parametrize(
    "cfg",
    [
        MLPConfig(hidden_units=(64, 32, 16)),
        MLPConfig(hidden_units=(64, 32, 16), batch_norm=True),
        MLPConfig(hidden_units=(7,), batch_norm=True, dropout=0.2),
    ],
    ids=["plain", "batch_norm", "narrow"],
)
def test_count_params_matches_torch(cfg: MLPConfig) -> None:
    torch_mlp = pytest.importorskip("sweeplab.objectives.torch_mlp")
    model = build_model(cfg, n_features=10, n_outputs=3, task="classification")
    expected = torch_mlp.count_params(torch_mlp.build_model(cfg, n_features=10, n_outputs=3))
    assert count_params(model) == expected
    if cfg.batch_norm:  # moving mean/variance are Keras weights, but not trainable and not counted
        assert model.count_params() == expected + 2 * sum(cfg.hidden_units)


# --------------------------------------------------------------------------- optimizers


@pytest.mark.parametrize(
    ("name", "cls", "expected"),
    [
        ("sgd", keras.optimizers.SGD, {"momentum": 0.8}),
        ("adam", keras.optimizers.Adam, {"beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}),
        ("rmsprop", keras.optimizers.RMSprop, {"momentum": 0.0, "rho": 0.99}),  # cfg.momentum not applied
        ("adagrad", keras.optimizers.Adagrad, {"initial_accumulator_value": 0.0, "epsilon": 1e-10}),
    ],
)
def test_optimizer_hyperparameters(name: str, cls: type, expected: dict[str, float]) -> None:
    opt = make_optimizer(MLPConfig(optimizer=name, learning_rate=0.02, momentum=0.8, weight_decay=1e-4))
    assert isinstance(opt, cls)
    assert float(opt.learning_rate) == pytest.approx(0.02)
    assert opt.l2 == 1e-4
    assert opt.weight_decay is None  # torch's coupled L2, not Keras' decoupled decay
    config = opt.get_config()
    for key, value in expected.items():
        assert config[key] == pytest.approx(value), key
    assert config["l2"] == 1e-4


@pytest.mark.parametrize(
    ("name", "momentum"), [("sgd", 0.0), ("sgd", 0.9), ("adam", 0.9), ("rmsprop", 0.9), ("adagrad", 0.9)]
)
def test_optimizer_steps_match_torch(name: str, momentum: float) -> None:
    # same start, same gradients (one tiny), weight decay on: the Keras optimizers take torch's steps
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(5,)).astype(np.float32)
    grads = [rng.normal(size=(5,)).astype(np.float32) * scale for scale in (1.0, 0.1, 2.0, 1e-3, 0.5)]
    opt = make_optimizer(MLPConfig(optimizer=name, learning_rate=0.05, momentum=momentum, weight_decay=0.01))
    var = keras.Variable(w0.copy())
    param = torch.nn.Parameter(torch.tensor(w0.copy()))
    torch_opt = {
        "sgd": lambda: torch.optim.SGD([param], lr=0.05, momentum=momentum, weight_decay=0.01),
        "adam": lambda: torch.optim.Adam([param], lr=0.05, weight_decay=0.01),
        "rmsprop": lambda: torch.optim.RMSprop([param], lr=0.05, weight_decay=0.01),
        "adagrad": lambda: torch.optim.Adagrad([param], lr=0.05, weight_decay=0.01),
    }[name]()
    for grad in grads:
        opt.apply([tf.constant(grad)], [var])
        param.grad = torch.tensor(grad)
        torch_opt.step()
    assert np.abs(np.asarray(var) - w0).max() > 0.02  # it moved
    np.testing.assert_allclose(np.asarray(var), param.detach().numpy(), rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_and_schedule_trains(optimizer: str, schedule: str) -> None:
    params = {
        "hidden_units": [8],
        "optimizer": optimizer,
        "lr_schedule": schedule,
        "learning_rate": 0.01,
        "lr_patience": 1,
        "weight_decay": 1e-4,
    }
    obj = KerasMLPObjective()
    out = obj.run(ctx_for(params, dataset=SMALL, epochs=3))
    assert {"val_loss", "val_accuracy", "loss", "accuracy", "test_loss", "test_accuracy"} <= set(out)
    assert {"best_epoch", "epochs_trained", "n_params", "train_seconds"} <= set(out)
    assert all(math.isfinite(v) for v in out.values()), out
    assert out["epochs_trained"] == 3
    val_losses = [h["val_loss"] for h in obj.history]
    assert out["best_epoch"] == 1 + val_losses.index(min(val_losses))  # weights restored from the best val_loss
    assert out["n_params"] == count_params(obj.model)
    assert obj.config == MLPConfig.from_params(params)
    lrs = [h["lr"] for h in obj.history]
    assert lrs[0] == pytest.approx(0.01)
    if schedule == "exponential":
        assert lrs == pytest.approx([0.01 * 0.95**i for i in range(3)])
        assert float(obj.model.optimizer.learning_rate) == pytest.approx(0.01 * 0.95**3)
    if schedule == "none":
        assert lrs == [0.01] * 3


def test_plateau_schedule_reduces_lr_when_val_loss_stalls() -> None:
    # the torch test's scenario: lr so small that val_loss stalls; after lr_patience=1 epochs
    # without an improvement above the absolute threshold (epochs 2 and 3) the lr is halved
    params = {
        "optimizer": "sgd",
        "learning_rate": 1e-6,
        "momentum": 0.0,
        "lr_schedule": "plateau",
        "lr_patience": 1,
        "lr_factor": 0.5,
        "min_lr": 1e-9,
    }
    obj = KerasMLPObjective()
    obj.run(ctx_for(params, epochs=4))
    lrs = [h["lr"] for h in obj.history]
    assert lrs == pytest.approx([1e-6, 1e-6, 1e-6, 5e-7])


def test_plateau_helper_matches_torch_reduce_lr_on_plateau() -> None:
    torch = pytest.importorskip("torch")
    values = [1.0, 0.99995, 0.9, 0.9, 0.9, 0.89, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95]
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt,
        mode="min",
        factor=0.5,
        patience=2,
        min_lr=0.02,
        threshold=epochs.PLATEAU_THRESHOLD,
        threshold_mode="abs",
    )
    plateau, lr = epochs.Plateau(factor=0.5, patience=2, min_lr=0.02), 0.1
    for value in values:
        sched.step(value)
        lr = plateau.step(value, lr)
        assert lr == pytest.approx(opt.param_groups[0]["lr"])
    assert lr < 0.1  # the sequence does reduce it


def test_classification_learns_easy_problem() -> None:
    ds = make_cls_dataset(n=400, n_train=280, n_val=80, class_sep=2.5)
    params = {"hidden_units": [32, 16], "optimizer": "adam", "learning_rate": 0.01, "batch_size": 32}
    obj = KerasMLPObjective()
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
    obj = KerasMLPObjective()
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
    assert float(((pred - REG.y_val) ** 2).mean()) == pytest.approx(out["val_loss"], rel=1e-4)


def test_deterministic_for_same_context_and_seed_dependent() -> None:
    # dropout and batch norm on (their randomness must follow the seed too); the worker keeps one
    # objective per process, so the repeat runs on the same instance after other trials
    params = {"hidden_units": [16, 16], "dropout": 0.2, "batch_norm": True, "batch_size": 16, "optimizer": "adam"}
    obj = KerasMLPObjective()
    out_a = obj.run(ctx_for(params, epochs=3, seed=11))
    history_a = obj.history
    weights_a = [np.array(w) for w in obj.model.get_weights()]
    out_c = obj.run(ctx_for(params, epochs=3, seed=12))
    history_c = obj.history
    obj.run(ctx_for({"hidden_units": [12, 4], "optimizer": "sgd"}, dataset=SMALL, epochs=1, seed=4))
    out_b = obj.run(ctx_for(params, epochs=3, seed=11))
    assert without_time(out_a) == without_time(out_b)
    assert history_a == obj.history
    for wa, wb in zip(weights_a, obj.model.get_weights(), strict=True):
        assert np.array_equal(wa, wb)
    assert without_time(out_a) != without_time(out_c)
    assert history_a != history_c


def test_trials_leave_no_graphs_behind() -> None:
    # a worker runs thousands of trials: nothing may keep a finished trial's traced graphs alive
    # (TensorFlow's global gradient registry did, through Keras' all-reduce of the gradients)
    def live_graphs() -> int:
        gc.collect()
        return sum(type(o).__name__.endswith("FuncGraph") for o in gc.get_objects())

    obj = KerasMLPObjective()
    obj.run(ctx_for({"hidden_units": [8]}, dataset=SMALL, epochs=1, seed=1))
    before = live_graphs()
    for seed in (2, 3):
        obj.run(ctx_for({"hidden_units": [8, 4], "optimizer": "sgd"}, dataset=SMALL, epochs=1, seed=seed))
    assert live_graphs() <= before


def test_reporter_gets_one_report_per_epoch() -> None:
    reporter = NullReporter()
    obj = KerasMLPObjective()
    obj.run(ctx_for({}, epochs=4, reporter=reporter))
    assert [e for e, _ in reporter.history] == [1, 2, 3, 4]
    assert all(set(m) == CLS_KEYS for _, m in reporter.history)
    assert all(type(v) is float for _, m in reporter.history for v in m.values())
    assert [m for _, m in reporter.history] == obj.history
    assert all(0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["val_accuracy"] <= 1.0 for m in obj.history)
    # val metrics come from the full validation set (multiples of 1/60 here)
    assert all(round(m["val_accuracy"] * len(CLS.y_val), 6).is_integer() for m in obj.history)


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
    obj = KerasMLPObjective()
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
    obj = KerasMLPObjective()
    out = obj.run(ctx_for(params, epochs=30, early_stopping=es))
    assert out["epochs_trained"] == 3  # of 30
    assert len(obj.history) == 3
    losses = [h["val_loss"] for h in obj.history]
    assert out["val_loss"] == min(losses)
    assert out["best_epoch"] == losses.index(min(losses)) + 1


def test_early_stopping_after_overfitting_restores_best_weights() -> None:
    params = {"hidden_units": [128, 128], "optimizer": "adam", "learning_rate": 0.03, "batch_size": 16}
    es = {"patience": 3, "min_delta": 0.0}  # a mapping works too; monitor defaults to val_loss
    obj = KerasMLPObjective()
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
    params = {"hidden_units": [32], "optimizer": "adam", "learning_rate": 0.05, "batch_size": 16}
    obj = KerasMLPObjective()
    out = obj.run(ctx_for(params, epochs=6))
    assert out["epochs_trained"] == 6
    assert out["val_loss"] == min(h["val_loss"] for h in obj.history)
    es = SimpleNamespace(patience=100, min_delta=0.0, monitor="val_accuracy")
    out = obj.run(ctx_for(params, epochs=6, early_stopping=es))
    accs = [h["val_accuracy"] for h in obj.history]
    assert out["val_accuracy"] == max(accs)
    assert out["best_epoch"] == accs.index(max(accs)) + 1  # the earliest on ties
    pred = predict(obj.model, CLS.X_val, "classification")
    assert float((pred == CLS.y_val).mean()) == pytest.approx(out["val_accuracy"])


def test_early_stopping_monitor_must_exist() -> None:
    es = SimpleNamespace(patience=2, min_delta=0.0, monitor="val_accuracy")
    with pytest.raises(ValueError, match=r"early_stopping\.monitor must be one of"):
        KerasMLPObjective().run(ctx_for({}, dataset=REG, early_stopping=es))


@pytest.mark.parametrize("dataset", [CLS, REG], ids=["classification", "regression"])
def test_huge_learning_rate_raises_floating_point_error(dataset: Dataset) -> None:
    params = {"optimizer": "sgd", "learning_rate": 1e6}
    reporter = NullReporter()
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) at epoch \d+; lower learning_rate"):
        KerasMLPObjective().run(ctx_for(params, dataset=dataset, epochs=20, reporter=reporter))
    assert all(math.isfinite(m["loss"]) for _, m in reporter.history)  # the bad epoch is never reported


def test_batch_norm_with_single_row_last_batch_and_no_test_part() -> None:
    assert batch_bounds(201, 50, merge_singleton=True)[-1] == (150, 201)
    assert batch_bounds(201, 50, merge_singleton=False)[-1] == (200, 201)
    ds = make_cls_dataset(n=300, n_train=201, n_val=60, test=False)
    out = KerasMLPObjective().run(ctx_for({"batch_norm": True, "batch_size": 50}, dataset=ds, epochs=2))
    assert not any(k.startswith("test_") for k in out)
    assert math.isfinite(out["val_loss"])


def test_every_row_is_trained_once_per_epoch_in_a_seeded_order() -> None:
    x = tf.reshape(tf.range(11, dtype=tf.float32), (11, 1))
    y = tf.range(11, dtype=tf.int64)
    bounds = batch_bounds(11, 4, merge_singleton=False)
    batches = [b[1].numpy().tolist() for b in keras_mlp._train_dataset(x, y, bounds, epochs=3, seed=5)]
    assert [len(b) for b in batches] == [4, 4, 3] * 3
    epochs = [[row for b in batches[i : i + 3] for row in b] for i in (0, 3, 6)]
    assert all(sorted(e) == list(range(11)) for e in epochs)
    assert epochs[0] != epochs[1]  # reshuffled every epoch
    again = [b[1].numpy().tolist() for b in keras_mlp._train_dataset(x, y, bounds, epochs=3, seed=5)]
    assert again == batches


def test_model_saves_and_loads_with_its_custom_objects(tmp_path: Any) -> None:
    cfg = MLPConfig(hidden_units=(8,), activation="leaky_relu", batch_norm=True, weight_decay=1e-3)
    model = build_model(cfg, n_features=10, n_outputs=3, task="classification")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, keras_mlp.MLP)
    np.testing.assert_array_equal(loaded(CLS.X_val, training=False), model(CLS.X_val, training=False))
    assert loaded.optimizer.l2 == 1e-3


def test_predict_is_inference_mode_and_checks_its_input() -> None:
    model = build_model(MLPConfig(hidden_units=(8,), dropout=0.5), n_features=10, n_outputs=3, task="classification")
    first = predict(model, CLS.X_val, "classification")
    assert np.array_equal(first, predict(model, CLS.X_val, "classification"))  # dropout is off
    with pytest.raises(ValueError, match="task must be"):
        predict(model, CLS.X_val, "ranking")
    with pytest.raises(ValueError, match="2-D array"):
        predict(model, CLS.X_val[0], "classification")


# --------------------------------------------------------------------------- threads and imports


def test_runtime_is_configured_once_per_process() -> None:
    state = keras_mlp.configure_runtime(5)
    assert state["configured"]
    assert keras_mlp.configure_runtime(7) == state  # later calls change nothing
    assert tf.config.threading.get_intra_op_parallelism_threads() == state["intra_op_threads"]
    assert tf.config.threading.get_inter_op_parallelism_threads() == state["inter_op_threads"]
    if not state["note"]:  # this process's first keras trial set the pools
        assert state["inter_op_threads"] == 1
    else:
        assert "initialized" in state["note"]


def test_fresh_process_lazy_import_and_threads_from_first_trial() -> None:
    # one subprocess (TensorFlow's import is the cost): the package does not import the module,
    # and the first configuration of a fresh process sets the thread pools; later ones keep them
    code = textwrap.dedent(
        """
        import json, sys
        import sweeplab, sweeplab.objectives
        lazy = "tensorflow" not in sys.modules and "sweeplab.objectives.keras_mlp" not in sys.modules
        from sweeplab.objectives import keras_mlp
        import tensorflow as tf
        first = keras_mlp.configure_runtime(2.5)
        second = keras_mlp.configure_runtime(1)
        pools = [tf.config.threading.get_intra_op_parallelism_threads(),
                 tf.config.threading.get_inter_op_parallelism_threads()]
        print(json.dumps([lazy, first["note"], first == second, pools]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lazy, note, unchanged, pools = json.loads(proc.stdout.strip().splitlines()[-1])
    assert lazy
    assert note == ""
    assert unchanged
    assert pools == [2, 1]
