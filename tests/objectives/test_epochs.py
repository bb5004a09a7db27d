"""The epoch policy both MLP objectives share (no framework: values in, decisions out)."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from sweeplab.objectives.base import NullReporter, TrialPruned
from sweeplab.objectives.config import MLPConfig
from sweeplab.objectives.epochs import PLATEAU_THRESHOLD, EpochPolicy, Plateau
from sweeplab.objectives.training import trial_settings


def policy(task: str = "classification", epochs: int = 10, early_stopping: Any = None, reporter: Any = None,
           **cfg: Any) -> EpochPolicy:
    ds = SimpleNamespace(task=task, name="d", y_train=[0, 1], y_val=[0, 1])
    settings = trial_settings(SimpleNamespace(task=task, epochs=epochs, early_stopping=early_stopping), ds)
    return EpochPolicy(settings, MLPConfig(**cfg), reporter if reporter is not None else NullReporter())


def run(p: EpochPolicy, val_losses: list[float], val_stats: list[float] | None = None) -> list[int]:
    """Feed epochs until the policy stops; returns the epochs that ran."""
    ran = []
    for epoch in p.epochs():
        i = epoch - 1
        p.end_epoch(epoch, 1.0, 0.5, val_losses[i], (val_stats or [0.5] * len(val_losses))[i])
        ran.append(epoch)
    return ran


def test_records_reports_and_tracks_the_best_epoch() -> None:
    reporter = NullReporter()
    p = policy(epochs=4, reporter=reporter)
    history = p.history
    assert [p.end_epoch(e, 1.0, 0.5, v, 0.25) for e, v in enumerate([0.9, 0.7, 0.7, 0.8], 1)] == [
        True, True, False, False]  # the earliest on ties
    assert p.best_epoch == 2 and p.epochs_trained == 4
    assert p.history is history and len(history) == 4
    assert history[0] == {"loss": 1.0, "accuracy": 0.5, "val_loss": 0.9, "val_accuracy": 0.25, "lr": 1e-3}
    assert [m for _, m in reporter.history] == history
    assert all(type(v) is float for m in history for v in m.values())


def test_accuracy_monitor_is_maximized_and_regression_uses_mae() -> None:
    p = policy(early_stopping={"patience": 5, "monitor": "val_accuracy"})
    run(p, [0.5] * 10, [0.2, 0.6, 0.4, 0.6] + [0.1] * 6)
    assert p.best_epoch == 2
    r = policy("regression", epochs=2)
    r.end_epoch(1, 1.0, 0.8, 0.9, 0.7)
    assert set(r.history[0]) == {"loss", "mae", "val_loss", "val_mae", "lr"}


def test_early_stopping_after_patience_epochs_without_an_improvement_by_min_delta() -> None:
    p = policy(epochs=30, early_stopping=SimpleNamespace(patience=2, min_delta=0.01, monitor="val_loss"))
    # epoch 2 improves by less than min_delta: it is the best epoch, but it does not reset the wait
    assert run(p, [1.0, 0.995, 0.999] + [0.5] * 27) == [1, 2, 3]
    assert p.stop and p.best_epoch == 2
    no_es = policy(epochs=5)
    assert run(no_es, [1.0] * 5) == [1, 2, 3, 4, 5]  # without early stopping every epoch runs
    assert not no_es.stop


@pytest.mark.parametrize(("split", "position"), [("training", 1), ("validation", 3)])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_raises_before_the_epoch_is_reported(split: str, position: int, bad: float) -> None:
    reporter = NullReporter()
    p = policy(reporter=reporter, learning_rate=0.5, optimizer="sgd")
    p.end_epoch(1, 1.0, 0.5, 1.0, 0.5)
    values = [1.0, 0.5, 1.0, 0.5]
    values[position - 1] = bad
    name = "nan" if math.isnan(bad) else "inf"
    hint = " or use batch_norm / a smaller batch_size" if split == "training" else ""
    with pytest.raises(FloatingPointError) as info:
        p.end_epoch(2, *values)
    assert str(info.value) == f"{split} loss became {name} at epoch 2; lower learning_rate (was 0.5 with sgd){hint}"
    assert len(reporter.history) == len(p.history) == 1


def test_pruning_propagates_after_the_epoch_is_recorded() -> None:
    class Prune:
        def report(self, epoch: int, metrics: Any) -> None:
            raise TrialPruned(epoch)

    p = policy(reporter=Prune())
    with pytest.raises(TrialPruned):
        p.end_epoch(1, 1.0, 0.5, 1.0, 0.5)
    assert len(p.history) == 1


def test_learning_rate_schedules() -> None:
    p = policy(epochs=3, learning_rate=0.1, lr_schedule="exponential", lr_decay_rate=0.5)
    run(p, [1.0, 0.9, 0.8])
    assert [m["lr"] for m in p.history] == [0.1, 0.05, 0.025] and p.lr == 0.0125
    p = policy(epochs=6, learning_rate=0.1, lr_schedule="plateau", lr_patience=1, lr_factor=0.5, min_lr=0.03)
    run(p, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert [m["lr"] for m in p.history] == [0.1, 0.1, 0.1, 0.05, 0.05, 0.03]
    p = policy(epochs=3, learning_rate=0.1)
    run(p, [1.0, 2.0, 3.0])
    assert [m["lr"] for m in p.history] == [0.1] * 3


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
        threshold=PLATEAU_THRESHOLD,
        threshold_mode="abs",
    )
    plateau, lr = Plateau(factor=0.5, patience=2, min_lr=0.02), 0.1
    for value in values:
        sched.step(value)
        lr = plateau.step(value, lr)
        assert lr == pytest.approx(opt.param_groups[0]["lr"])
    assert lr < 0.1  # the sequence does reduce it


def test_final_metrics_are_the_best_epochs() -> None:
    p = policy(epochs=3)
    run(p, [0.9, 0.5, 0.7], [0.1, 0.8, 0.9])
    out = p.final_metrics(test=(0.6, 0.75), n_params=100, train_seconds=1.5, latency_ms=0.01)
    assert out == {"val_loss": 0.5, "val_accuracy": 0.8, "loss": 1.0, "accuracy": 0.5, "test_loss": 0.6,
                   "test_accuracy": 0.75, "best_epoch": 2.0, "epochs_trained": 3.0, "n_params": 100.0,
                   "train_seconds": 1.5, "latency_ms": 0.01}
    assert list(out)[:4] == ["val_loss", "val_accuracy", "loss", "accuracy"]
    fine_tuned = p.final_metrics(test=None, n_params=100, train_seconds=1.0, latency_ms=0.01, frozen_params=30)
    assert "test_loss" not in fine_tuned
    assert (fine_tuned["n_params"], fine_tuned["n_trainable_params"]) == (100.0, 70.0)
