"""The refit's data (train + validation merged) and a user's holdout table as the test part."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_wine

from sweeplab.core.errors import DataError, SpecError
from sweeplab.objectives.base import NullReporter
from sweeplab.objectives.data import load_dataset
from sweeplab.objectives.trial import Trial
from sweeplab.spec import parse_spec


def _wine_tables(tmp_path):
    """Wine as a CSV of 148 rows and a holdout CSV of the other 30 (columns shuffled, string labels)."""
    bunch = load_wine()
    frame = pd.DataFrame(bunch.data, columns=bunch.feature_names)
    frame["cultivar"] = np.asarray(["a", "b", "c"])[bunch.target]
    frame = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    main, hold = frame.iloc[:148], frame.iloc[148:]
    main.to_csv(tmp_path / "wine.csv", index=False)
    hold[list(reversed(hold.columns))].to_csv(tmp_path / "holdout.csv", index=False)
    return str(tmp_path / "wine.csv"), str(tmp_path / "holdout.csv"), main, hold


def test_merge_validation_trains_on_train_and_validation_and_keeps_the_test_part():
    args = {"task": "classification", "name": "wine", "validation_split": 0.2, "test_split": 0.2, "seed": 3}
    plain = load_dataset(**args)
    merged = load_dataset(**args, merge_validation=True)
    assert merged.refit and not plain.refit and merged.info["refit"] is True
    n = len(plain.y_train) + len(plain.y_val)
    assert len(merged.y_train) == n == merged.info["n_train"] and merged.info["n_val"] == 0
    assert merged.X_val is merged.X_train  # what a refit reports val_* on: its own rows
    # the same rows as the plain split's train + validation parts, and a scaler fitted on them
    raw_plain = np.concatenate([plain.scaler.inverse_transform(plain.X_train),
                                plain.scaler.inverse_transform(plain.X_val)])
    raw_merged = merged.scaler.inverse_transform(merged.X_train)
    np.testing.assert_allclose(raw_merged, raw_plain, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(merged.scaler.mean_, raw_plain.mean(axis=0), rtol=1e-4)
    # the test part is the same rows, untouched by the merge
    np.testing.assert_array_equal(merged.y_test, plain.y_test)
    np.testing.assert_allclose(merged.scaler.inverse_transform(merged.X_test),
                               plain.scaler.inverse_transform(plain.X_test), rtol=1e-4, atol=1e-3)


def test_a_refit_trains_every_epoch_and_keeps_the_last():
    from sweeplab.objectives.torch_mlp import TorchMLPObjective

    ds = load_dataset(task="classification", name="iris", validation_split=0.2, test_split=0.2, seed=0,
                      merge_validation=True)
    settings = {"task": "classification", "epochs": 7, "early_stopping": {"patience": 1, "monitor": "val_loss"}}
    obj = TorchMLPObjective()
    ctx = Trial(params={"hidden_units": [8], "learning_rate": 0.5, "optimizer": "sgd"}, dataset=ds, seed=1,
                reporter=NullReporter(), settings=settings)
    metrics = obj.run(ctx)
    # patience 1 and a large learning rate would stop early and pick an earlier epoch; a refit does neither
    assert metrics["epochs_trained"] == 7 and metrics["best_epoch"] == 7
    assert metrics["loss"] == obj.history[-1]["loss"]


def test_holdout_table_is_the_test_part(tmp_path):
    data, holdout, main, hold = _wine_tables(tmp_path)
    ds = load_dataset(task="classification", path=data, target="cultivar", validation_split=0.25, test_split=0.0,
                      seed=1, holdout_path=holdout, holdout_target="cultivar")
    assert len(ds.y_test) == len(hold) == ds.info["n_test"] and ds.info["holdout"] == holdout
    assert len(ds.y_train) + len(ds.y_val) == len(main)
    features = [c for c in main.columns if c != "cultivar"]
    np.testing.assert_allclose(ds.X_test, ds.scaler.transform(hold[features].to_numpy()).astype(np.float32),
                               rtol=1e-6)
    assert [ds.class_labels[i] for i in ds.y_test] == hold["cultivar"].tolist()


def test_holdout_errors_name_the_problem(tmp_path):
    data, holdout, _main, hold = _wine_tables(tmp_path)
    args = {"task": "classification", "path": data, "target": "cultivar", "validation_split": 0.25, "seed": 1}
    hold.drop(columns=["alcohol"]).to_csv(tmp_path / "fewer.csv", index=False)
    with pytest.raises(DataError, match=r"objective.holdout.path: .*missing \['alcohol'\]"):
        load_dataset(**args, test_split=0.0, holdout_path=str(tmp_path / "fewer.csv"), holdout_target="cultivar")
    hold.rename(columns={"cultivar": "kind"}).to_csv(tmp_path / "kind.csv", index=False)
    with pytest.raises(DataError, match="target column is 'kind' but the dataset's is 'cultivar'"):
        load_dataset(**args, test_split=0.0, holdout_path=str(tmp_path / "kind.csv"), holdout_target="kind")
    hold.assign(cultivar=hold["cultivar"].replace("a", "z")).to_csv(tmp_path / "new.csv", index=False)
    with pytest.raises(DataError, match=r"label\(s\) \['z'\] of the holdout are not classes"):
        load_dataset(**args, test_split=0.0, holdout_path=str(tmp_path / "new.csv"), holdout_target="cultivar")
    with pytest.raises(DataError, match="replaces the test part"):
        load_dataset(**args, test_split=0.2, holdout_path=holdout, holdout_target="cultivar")


def _spec(**objective):
    return {"study": "s", "metric": "val_accuracy", "direction": "maximize", "trials": 1,
            "objective": {"framework": "torch", "dataset": {"path": "wine.csv", "target": "cultivar"}, **objective},
            "space": {"learning_rate": {"type": "float", "low": 0.001, "high": 0.1}}}


def test_spec_holdout():
    spec = parse_spec(_spec(holdout={"path": "holdout.csv", "target": "cultivar"}))
    assert spec.objective.holdout.path == "holdout.csv" and spec.objective.test_split == 0.0
    assert parse_spec(spec.to_dict()) == spec
    assert "holdout" not in parse_spec(_spec()).to_dict()["objective"]
    with pytest.raises(SpecError, match=r"objective.test_split: the holdout file is the test part"):
        parse_spec(_spec(holdout={"path": "holdout.csv"}, test_split=0.2))
    with pytest.raises(SpecError, match=r"objective.holdout.path: must be a CSV or Parquet file"):
        parse_spec(_spec(holdout={"path": "holdout.npz"}))
    with pytest.raises(SpecError, match=r"objective.holdout: needs `path`"):
        parse_spec(_spec(holdout={"target": "cultivar"}))


def test_a_cross_validated_studys_refit_data_has_every_row_left_after_the_test_part_and_no_folds():
    from sweeplab.core.validation import KFOLD, Validation

    args = {"task": "classification", "name": "wine", "test_split": 0.2, "seed": 3,
            "validation": Validation(KFOLD, kfold=5, repeats=1)}
    cv = load_dataset(**args)
    merged = load_dataset(**args, merge_validation=True)
    assert len(cv.folds) == 5 and merged.folds == () and merged.n_folds == 1 and merged.info["n_folds"] == 1
    assert len(merged.y_train) == len(cv.y_train) == 178 - len(cv.y_test)
    np.testing.assert_array_equal(merged.y_test, cv.y_test)
