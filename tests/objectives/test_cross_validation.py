"""Cross-validation as an evaluation mode (``objective.validation``): the folds the data module cuts,
``auto``'s choice, and the network objectives training one model per fold in lockstep (both frameworks)."""

from __future__ import annotations

import importlib
import math
import statistics

import numpy as np
import pytest
from sweeplab_mlp_kit import CLS_KEYS, PruneAt, ctx_for

from sweeplab.core.errors import DataError
from sweeplab.core.keys import METRIC_N_FOLDS
from sweeplab.core.validation import AUTO, AUTO_KFOLD, AUTO_MAX_ROWS, HOLDOUT, KFOLD, Validation
from sweeplab.objectives.base import NullReporter, Trial
from sweeplab.objectives.data import load_dataset
from sweeplab.objectives.evaluation import fold_history_csv
from sweeplab.registry.names import MLP_FRAMEWORKS


def wine(validation: Validation, seed: int = 3, **kw: object) -> object:
    return load_dataset(task="classification", name="wine", seed=seed, validation=validation, **kw)


def rows(X: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.asarray(X)}


# --------------------------------------------------------------------------- the folds


def test_folds_are_disjoint_cover_the_non_test_rows_and_are_stratified() -> None:
    ds = wine(Validation(KFOLD, kfold=4, repeats=2))
    n_dev = len(ds.y_train)
    assert len(ds.y_val) == 0 and ds.n_folds == len(ds.folds) == 8
    assert n_dev + len(ds.y_test) == ds.info["n_rows"] == 178 and len(ds.y_test) == round(0.2 * 178)
    assert rows(ds.X_train).isdisjoint(rows(ds.X_test))  # the test rows are in no fold
    class_share = np.bincount(ds.y_train) / n_dev
    for repeat in range(2):
        folds = ds.folds[4 * repeat : 4 * repeat + 4]
        val_parts = [val for _, val in folds]
        # within a repeat: validation parts disjoint, together every non-test row once
        assert sorted(np.concatenate(val_parts).tolist()) == list(range(n_dev))
        for train, val in folds:
            assert set(train.tolist()).isdisjoint(val.tolist())
            assert len(train) + len(val) == n_dev
            # stratified: each class's share of the validation part within one row of its share overall
            counts = np.bincount(ds.y_train[val], minlength=len(ds.class_labels))
            assert np.all(np.abs(counts - class_share * len(val)) <= 1.0)
    assert [v.tolist() for _, v in ds.folds[:4]] != [v.tolist() for _, v in ds.folds[4:]]  # repeats reshuffle


def test_folds_are_seeded_by_the_study_seed_and_fold_datasets_slice_them() -> None:
    a, b, other = (wine(Validation(KFOLD, kfold=3)), wine(Validation(KFOLD, kfold=3)),
                   wine(Validation(KFOLD, kfold=3), seed=4))
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(a.folds, b.folds, strict=True))
    assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a.folds, other.folds, strict=True))
    fold = a.fold(1)
    train, val = a.folds[1]
    np.testing.assert_array_equal(fold.X_train, a.X_train[train])
    np.testing.assert_array_equal(fold.y_val, a.y_train[val])
    np.testing.assert_array_equal(fold.X_test, a.X_test)
    assert fold.folds == () and fold.info["fold"] == 1 and fold.info["n_val"] == len(val)
    with pytest.raises(IndexError, match="fold 3 out of range: the dataset has 3 folds"):
        a.fold(3)
    holdout = wine(Validation())
    assert holdout.fold_datasets() == [holdout] and holdout.n_folds == 1 and len(holdout.y_val) > 0


def test_regression_folds_are_shuffled_plain_kfold() -> None:
    ds = load_dataset(task="regression", name="diabetes", seed=1, validation=Validation(KFOLD, kfold=5))
    assert sorted(np.concatenate([v for _, v in ds.folds]).tolist()) == list(range(len(ds.y_train)))
    first_val = ds.folds[0][1]
    assert not np.array_equal(first_val, np.arange(len(first_val)))  # shuffled, not the first rows in order


def test_the_scaler_is_fitted_on_the_non_test_rows_only() -> None:
    ds = wine(Validation(KFOLD, kfold=3))
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-5)
    assert not np.allclose(ds.X_test.mean(axis=0), 0.0, atol=1e-3)


def test_kfold_larger_than_the_smallest_class_is_a_data_error_naming_the_key() -> None:
    # wine's smallest class has 48 rows: 38 are left after a 20 % test split
    with pytest.raises(DataError, match=r"objective\.validation\.kfold: 40 stratified folds need at least 40 rows "
                                        r"of every class.*Use kfold <= 38"):
        wine(Validation(KFOLD, kfold=40))


def test_validation_split_is_not_used_with_kfold() -> None:
    ds = wine(Validation(KFOLD, kfold=3), validation_split=0.9)  # ignored, not refused, at this level
    assert ds.info["validation_split"] is None and ds.info["validation"] == {"kfold": 3, "repeats": 1}


@pytest.mark.parametrize(("n_samples", "expected"), [(AUTO_MAX_ROWS, KFOLD), (AUTO_MAX_ROWS * 2, HOLDOUT)])
def test_auto_cross_validates_a_small_table_and_holds_out_on_a_large_one(n_samples: int, expected: str) -> None:
    # 20 % test: AUTO_MAX_ROWS rows leave 0.8 * AUTO_MAX_ROWS (small), twice as many leave 1.6 * AUTO_MAX_ROWS (large)
    ds = load_dataset(task="classification", name="make_classification", options={"n_samples": n_samples},
                      seed=0, validation=Validation(AUTO))
    if expected == KFOLD:
        assert ds.n_folds == AUTO_KFOLD and ds.info["validation"] == {"kfold": AUTO_KFOLD, "repeats": 1}
        assert len(ds.y_val) == 0
    else:
        assert ds.folds == () and ds.info["validation"] == HOLDOUT and len(ds.y_val) == round(0.2 * n_samples)


def test_auto_resolves_on_the_rows_left_after_the_test_split() -> None:
    small = Validation(AUTO).resolve(AUTO_MAX_ROWS - 1)
    assert (small.mode, small.kfold, small.repeats) == (KFOLD, AUTO_KFOLD, 1)
    assert Validation(AUTO).resolve(AUTO_MAX_ROWS).mode == HOLDOUT
    assert Validation(AUTO).resolve(100, smallest_class=3).kfold == 3  # never more folds than a class has rows
    assert Validation(KFOLD, 7, 2).resolve(10**6) == Validation(KFOLD, 7, 2)  # an explicit mode stays


def test_trial_folds_give_a_users_function_every_fold_or_the_holdout_dataset() -> None:
    cv = wine(Validation(KFOLD, kfold=3, repeats=2))
    folds = Trial(params={}, dataset=cv, seed=0, reporter=NullReporter(), settings=None).folds()
    assert len(folds) == 6
    for i, fold in enumerate(folds):
        np.testing.assert_array_equal(fold.X_val, cv.fold(i).X_val)
    holdout = wine(Validation())
    assert Trial(params={}, dataset=holdout, seed=0, reporter=NullReporter(), settings=None).folds() == [holdout]
    with pytest.raises(ValueError, match=r"names no objective\.dataset, so there are no folds"):
        Trial(params={}, dataset=None, seed=0, reporter=NullReporter(), settings=None).folds()


# --------------------------------------------------------------------------- the objectives


@pytest.fixture(scope="module", params=MLP_FRAMEWORKS)
def objective_cls(request: pytest.FixtureRequest) -> type:
    name = request.param
    pytest.importorskip({"torch": "torch", "keras": "tensorflow"}[name])
    module = importlib.import_module(f"sweeplab.objectives.{name}_mlp")
    return module.TorchMLPObjective if name == "torch" else module.KerasMLPObjective


CV = wine(Validation(KFOLD, kfold=3))
PARAMS = {"hidden_units": [16], "learning_rate": 0.01, "batch_size": 32}


def test_each_epoch_reports_the_mean_over_folds_and_returns_its_spread(objective_cls: type) -> None:
    reporter = NullReporter()
    obj = objective_cls()
    out = obj.run(ctx_for(PARAMS, dataset=CV, epochs=4, reporter=reporter))
    assert [epoch for epoch, _ in reporter.history] == [1, 2, 3, 4]
    assert len(obj.fold_history) == 4 and all(len(folds) == 3 for folds in obj.fold_history)
    for (_, reported), folds in zip(reporter.history, obj.fold_history, strict=True):
        assert set(reported) == CLS_KEYS
        for key in ("val_accuracy", "val_loss", "accuracy", "loss"):
            assert reported[key] == pytest.approx(statistics.fmean(f[key] for f in folds), rel=1e-12)
        assert len({f["val_loss"] for f in folds}) == 3  # three models, three curves
    best = int(out["best_epoch"])
    val_losses = [h["val_loss"] for h in obj.history]
    assert best == 1 + val_losses.index(min(val_losses))  # the best epoch of the mean curve
    at_best = obj.fold_history[best - 1]
    assert out["val_accuracy"] == pytest.approx(statistics.fmean(f["val_accuracy"] for f in at_best))
    assert out["val_accuracy_std"] == pytest.approx(statistics.pstdev([f["val_accuracy"] for f in at_best]))
    assert out["val_loss_std"] > 0 and out[METRIC_N_FOLDS] == 3
    assert math.isfinite(out["test_accuracy"]) and math.isfinite(out["test_loss"])
    csv_lines = fold_history_csv(obj.fold_history).splitlines()
    assert csv_lines[0] == "epoch,fold,loss,accuracy,val_loss,val_accuracy" and len(csv_lines) == 1 + 4 * 3


def test_a_holdout_trial_has_no_fold_metrics(objective_cls: type) -> None:
    obj = objective_cls()
    out = obj.run(ctx_for(PARAMS, dataset=wine(Validation()), epochs=2))
    assert obj.fold_history == [] and METRIC_N_FOLDS not in out and "val_accuracy_std" not in out


def test_pruning_stops_every_fold_at_the_same_epoch(objective_cls: type) -> None:
    from sweeplab.objectives.base import TrialPruned

    reporter = PruneAt(2)
    obj = objective_cls()
    with pytest.raises(TrialPruned):
        obj.run(ctx_for(PARAMS, dataset=CV, epochs=6, reporter=reporter))
    assert reporter.epochs == [1, 2]
    assert len(obj.fold_history) == 2 and all(len(folds) == 3 for folds in obj.fold_history)


def test_early_stopping_follows_the_mean_curve(objective_cls: type) -> None:
    from types import SimpleNamespace

    reporter = NullReporter()
    obj = objective_cls()
    params = {**PARAMS, "learning_rate": 0.05}
    out = obj.run(ctx_for(params, dataset=CV, epochs=40, reporter=reporter,
                          early_stopping=SimpleNamespace(patience=2, min_delta=0.0, monitor="val_loss")))
    trained = int(out["epochs_trained"])
    assert trained < 40 and len(obj.fold_history) == trained
    mean_curve = [h["val_loss"] for h in obj.history]
    best = int(out["best_epoch"])
    assert best == 1 + mean_curve.index(min(mean_curve)) and trained - best == 2  # patience on the mean


def test_a_cnn_cross_validates_on_image_folds(objective_cls: type) -> None:
    from sweeplab_image_kit import cnn_ctx

    digits = load_dataset(task="classification", name="digits", options={"n_class": 3}, seed=0, model="cnn",
                          validation=Validation(KFOLD, kfold=2))
    assert digits.X_train.ndim == 4 and digits.fold(1).X_val.shape[1:] == (8, 8, 1)
    reporter = NullReporter()
    obj = objective_cls()
    out = obj.run(cnn_ctx(dataset=digits, epochs=2, reporter=reporter))
    assert out[METRIC_N_FOLDS] == 2 and len(obj.fold_history) == 2
    for (_, reported), folds in zip(reporter.history, obj.fold_history, strict=True):
        assert reported["val_accuracy"] == pytest.approx(statistics.fmean(f["val_accuracy"] for f in folds))
