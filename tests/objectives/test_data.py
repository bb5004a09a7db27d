"""Tests of sweeplab.objectives.data: real sklearn sets and real files in tmp_path, no mocks."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import StandardScaler

from sweeplab.core.errors import DataError
from sweeplab.objectives.data import BUNDLED, SYNTHETIC, load_dataset, load_raw
from sweeplab.objectives.dataset import Dataset

EXPECTED = {
    # name: (task, n_rows, n_features, n_classes)
    "make_classification": ("classification", 1000, 20, 3),
    "make_regression": ("regression", 1000, 20, 0),
    "iris": ("classification", 150, 4, 3),
    "wine": ("classification", 178, 13, 3),
    "breast_cancer": ("classification", 569, 30, 2),
    "digits": ("classification", 1797, 64, 10),
    "diabetes": ("regression", 442, 10, 0),
}


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A small mixed table: an `id` feature that is unique per row, two numeric features, a string label."""
    rng = np.random.default_rng(seed)
    labels = np.array(["cat", "dog", "eel"])[np.arange(n) % 3]
    return pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "a": rng.normal(5.0, 2.0, n),
            "b": rng.uniform(-3.0, 10.0, n),
            "label": labels,
        }
    )


def _csv(tmp_path: Path, frame: pd.DataFrame, name: str = "data.csv") -> str:
    file = tmp_path / name
    frame.to_csv(file, index=False)
    return str(file)


def _check_shapes(ds: Dataset, n_rows: int, n_features: int) -> None:
    parts = [(ds.X_train, ds.y_train), (ds.X_val, ds.y_val), (ds.X_test, ds.y_test)]
    assert sum(len(x) for x, _ in parts) == n_rows
    for x, y in parts:
        assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == n_features
        assert y.shape == (len(x),)
        assert y.dtype == (np.int64 if ds.task == "classification" else np.float32)
    assert len(ds.feature_names) == n_features == ds.n_features


@pytest.mark.parametrize("name", SYNTHETIC + BUNDLED)
def test_every_builtin_set_loads_with_its_shapes_and_task(name: str) -> None:
    task, n_rows, n_features, n_classes = EXPECTED[name]
    ds = load_dataset(task=task, name=name)
    _check_shapes(ds, n_rows, n_features)
    assert ds.task == task and ds.name == name and ds.n_classes == n_classes
    assert ds.info["n_rows"] == n_rows and ds.info["source"] in ("synthetic", "sklearn")
    assert abs(len(ds.X_val) - 0.2 * n_rows) <= 1 and abs(len(ds.X_test) - 0.2 * n_rows) <= 1
    if task == "classification":
        assert ds.class_labels == tuple(range(n_classes))
        assert set(np.unique(ds.y_train)) == set(range(n_classes))
        assert ds.n_outputs == n_classes
    else:
        assert ds.n_outputs == 1
    X, y = load_raw(task=task, name=name)
    assert X.shape == (n_rows, n_features) and len(y) == n_rows
    if name.startswith("make_"):
        assert ds.feature_names[:2] == ("x0", "x1")


def test_guide_call_needs_more_informative_features_and_defaults_fix_it() -> None:
    from sklearn.datasets import make_classification

    with pytest.raises(ValueError, match=r"2\*\*n_informative"):
        make_classification(n_samples=1000, n_features=20, n_classes=3)
    ds = load_dataset(task="classification", name="make_classification")
    assert ds.n_classes == 3 and ds.info["options"]["n_informative"] == 5


def test_stratified_split_keeps_class_proportions() -> None:
    weights = [0.6, 0.3, 0.1]
    ds = load_dataset(
        task="classification",
        name="make_classification",
        options={"n_samples": 1000, "weights": weights, "flip_y": 0.0},
    )
    whole = np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]), minlength=3) / 1000
    for y in (ds.y_train, ds.y_val, ds.y_test):
        share = np.bincount(y, minlength=3) / len(y)
        assert np.abs(share - whole).max() < 0.01


def test_string_labels_are_encoded_in_sorted_order(tmp_path: Path) -> None:
    frame = _table()
    frame["label"] = frame["label"].map({"cat": "zebra", "dog": "ant", "eel": "moth"})
    ds = load_dataset(task="classification", path=_csv(tmp_path, frame), target="label")
    assert ds.class_labels == ("ant", "moth", "zebra")
    _, y_raw = load_raw(task="classification", path=_csv(tmp_path, frame), target="label")
    ids = np.rint(ds.scaler.inverse_transform(ds.X_train)[:, 0]).astype(int)
    decoded = [ds.class_labels[i] for i in ds.y_train]
    assert decoded == y_raw.iloc[ids].tolist()
    assert ds.feature_names == ("id", "a", "b") and ds.name == "data"
    assert ds.info["source"] == "file" and ds.info["n_rows"] == 60


def test_scaler_is_fitted_on_training_rows_only(tmp_path: Path) -> None:
    path = _csv(tmp_path, _table(90))
    ds = load_dataset(task="classification", path=path, target="label")
    X_raw, _ = load_raw(task="classification", path=path, target="label")
    assert np.allclose(ds.X_train.mean(axis=0), 0.0, atol=1e-5)
    assert np.allclose(ds.X_train.std(axis=0), 1.0, atol=1e-4)
    ids = np.rint(ds.scaler.inverse_transform(ds.X_train)[:, 0]).astype(int)
    assert len(set(ids)) == len(ds.X_train)
    train_raw = X_raw.iloc[ids].to_numpy(dtype=np.float64)
    np.testing.assert_allclose(ds.scaler.mean_, train_raw.mean(axis=0), rtol=1e-12)
    assert not np.allclose(ds.scaler.mean_, X_raw.to_numpy(dtype=np.float64).mean(axis=0))
    # validation/test rows are transformed with the training statistics
    reference = StandardScaler().fit(train_raw)
    val_ids = np.rint(ds.scaler.inverse_transform(ds.X_val)[:, 0]).astype(int)
    expected_val = reference.transform(X_raw.iloc[val_ids].to_numpy(dtype=np.float64))
    np.testing.assert_allclose(ds.X_val, expected_val.astype(np.float32), rtol=1e-5, atol=1e-5)
    assert not set(ids) & set(val_ids)


def test_same_seed_same_arrays_other_seed_other_split(tmp_path: Path) -> None:
    path = _csv(tmp_path, _table(90))
    one = load_dataset(task="classification", path=path, target="label", seed=3)
    two = load_dataset(task="classification", path=path, target="label", seed=3)
    other = load_dataset(task="classification", path=path, target="label", seed=4)
    for field in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    ids_one = np.rint(one.scaler.inverse_transform(one.X_train)[:, 0]).astype(int)
    ids_other = np.rint(other.scaler.inverse_transform(other.X_train)[:, 0]).astype(int)
    assert set(ids_one) != set(ids_other)


def test_regression_split_is_random_and_seeded() -> None:
    a = load_dataset(task="regression", name="diabetes", seed=1)
    b = load_dataset(task="regression", name="diabetes", seed=1)
    c = load_dataset(task="regression", name="diabetes", seed=2)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.y_val, c.y_val)


def test_pass_through_options() -> None:
    ds = load_dataset(task="classification", name="make_classification", options={"n_features": 7, "n_samples": 200})
    _check_shapes(ds, 200, 7)
    small = load_dataset(task="classification", name="make_classification", options={"n_features": 4})
    assert small.n_features == 4
    reg = load_dataset(task="regression", name="make_regression", options={"n_features": 5, "noise": 0.5})
    _check_shapes(reg, 1000, 5)
    digits = load_dataset(task="classification", name="digits", options={"n_class": 4})
    assert digits.n_classes == 4


def test_invalid_option_combination_quotes_sklearn() -> None:
    with pytest.raises(DataError, match=r"objective\.dataset.*make_classification.*2\*\*n_informative"):
        load_dataset(task="classification", name="make_classification", options={"n_classes": 10, "n_informative": 2})


def test_unknown_option_lists_valid_ones() -> None:
    with pytest.raises(DataError, match=r"unknown option.*'n_feature'.*valid options:.*n_features.*n_informative"):
        load_dataset(task="classification", name="make_classification", options={"n_feature": 7})
    with pytest.raises(DataError, match=r"unknown option.*load_iris.*valid options: none"):
        load_dataset(task="classification", name="iris", options={"n_class": 2})


def test_task_mismatch_names_the_sets_task() -> None:
    with pytest.raises(DataError, match=r"'diabetes' is a regression dataset.*task: regression"):
        load_dataset(task="classification", name="diabetes")
    with pytest.raises(DataError, match=r"'iris' is a classification dataset"):
        load_dataset(task="regression", name="iris")
    with pytest.raises(DataError, match=r"'make_regression' is a regression dataset"):
        load_dataset(task="classification", name="make_regression")


def test_bad_source_arguments() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'mnist'.*iris"):
        load_dataset(task="classification", name="mnist")
    with pytest.raises(DataError, match="exactly one of `name`"):
        load_dataset(task="classification", name="iris", path="x.csv")
    with pytest.raises(DataError, match="exactly one of `name`"):
        load_dataset(task="classification")
    with pytest.raises(DataError, match=r"objective\.task must be one of"):
        load_dataset(task="ranking", name="iris")
    with pytest.raises(DataError, match=r"validation_split \+ test_split must be below 1"):
        load_dataset(task="classification", name="iris", validation_split=0.5, test_split=0.5)
    with pytest.raises(DataError, match=r"validation_split must be in \(0, 1\)"):
        load_dataset(task="classification", name="iris", validation_split=0.0)


def test_test_split_zero_gives_empty_test_part(tmp_path: Path) -> None:
    ds = load_dataset(task="classification", name="iris", test_split=0.0, validation_split=0.2)
    assert ds.X_test.shape == (0, 4) and ds.X_test.dtype == np.float32
    assert ds.y_test.shape == (0,) and ds.y_test.dtype == np.int64
    assert len(ds.X_train) == 120 and len(ds.X_val) == 30
    reg = load_dataset(task="regression", name="diabetes", test_split=0.0)
    assert reg.X_test.shape == (0, 10) and reg.y_test.dtype == np.float32


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = _table(50)
    frame["y"] = frame["a"] * 2.0 + 1.0
    frame = frame.drop(columns=["label"])
    for suffix in (".parquet", ".pq"):
        file = tmp_path / f"table{suffix}"
        frame.to_parquet(file, index=False)
        X, y = load_raw(task="regression", path=str(file), target="y")
        pd.testing.assert_frame_equal(X, frame.drop(columns=["y"]))
        np.testing.assert_array_equal(y.to_numpy(), frame["y"].to_numpy())
        ds = load_dataset(task="regression", path=str(file), target="y")
        _check_shapes(ds, 50, 3)
        assert ds.name == "table" and ds.y_train.dtype == np.float32


def test_csv_reader_options_pass_through(tmp_path: Path) -> None:
    file = tmp_path / "semi.csv"
    _table(30).to_csv(file, index=False, sep=";")
    ds = load_dataset(task="classification", path=str(file), target="label", options={"sep": ";"})
    assert ds.feature_names == ("id", "a", "b")
    with pytest.raises(DataError, match=r"unknown option.*'separator'.*read_csv"):
        load_dataset(task="classification", path=str(file), target="label", options={"separator": ";"})


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=r"objective\.dataset\.path: .*nope\.csv: file not found.*fix the path"):
        load_dataset(task="classification", path=str(missing), target="label")


def test_unreadable_files(tmp_path: Path) -> None:
    garbage = tmp_path / "broken.parquet"
    garbage.write_bytes(b"\x00\x01 this is not parquet \xff" * 10)
    with pytest.raises(DataError, match=r"broken\.parquet: cannot read the file as Parquet"):
        load_dataset(task="classification", path=str(garbage), target="label")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,label\n1,2,x\n1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"ragged\.csv: cannot read the file as CSV"):
        load_dataset(task="classification", path=str(ragged), target="label")
    with pytest.raises(DataError, match=r"not a regular file"):
        load_dataset(task="classification", path=str(tmp_path), target="label")
    other = tmp_path / "data.xlsx"
    other.write_text("x")
    with pytest.raises(DataError, match=r"data\.xlsx: unsupported file type '\.xlsx'.*CSV.*Parquet"):
        load_dataset(task="classification", path=str(other), target="label")


def test_empty_files(tmp_path: Path) -> None:
    for name, content in (("zero.csv", ""), ("blank.csv", "\n\n"), ("header.csv", "a,b,label\n")):
        file = tmp_path / name
        file.write_text(content)
        with pytest.raises(DataError, match=re.escape(name) + ": the file is empty"):
            load_dataset(task="classification", path=str(file), target="label")
    empty_pq = tmp_path / "empty.parquet"
    _table().iloc[:0].to_parquet(empty_pq)
    with pytest.raises(DataError, match=r"empty\.parquet: the file is empty"):
        load_dataset(task="classification", path=str(empty_pq), target="label")


def test_missing_target_column_lists_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path, _table())
    with pytest.raises(
        DataError, match=r"target column 'class' not found; available columns: \['id', 'a', 'b', 'label'\]"
    ):
        load_dataset(task="classification", path=path, target="class")


def test_non_numeric_features_are_named(tmp_path: Path) -> None:
    frame = _table()
    frame["colour"] = np.where(frame["id"] % 2 == 0, "red", "blue")
    with pytest.raises(DataError, match=r"non-numeric feature column\(s\) \['label', 'colour'\]; encode them"):
        load_dataset(task="regression", path=_csv(tmp_path, frame), target="a")


def test_missing_values_are_counted(tmp_path: Path) -> None:
    frame = _table()
    frame.loc[[1, 4], "a"] = np.nan
    frame.loc[7, "label"] = None
    with pytest.raises(DataError, match=r"3 missing value\(s\).*a \(2\), label \(1\).*dropna"):
        load_dataset(task="classification", path=_csv(tmp_path, frame), target="label")


def test_infinite_values(tmp_path: Path) -> None:
    frame = _table()
    frame.loc[3, "b"] = np.inf
    with pytest.raises(DataError, match=r"infinite values in feature column\(s\) \['b'\]"):
        load_dataset(task="classification", path=_csv(tmp_path, frame), target="label")


def test_too_few_rows(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"only 9 row\(s\); at least 10"):
        load_dataset(task="classification", path=_csv(tmp_path, _table(9)), target="label")


def test_single_class(tmp_path: Path) -> None:
    frame = _table()
    frame["label"] = "cat"
    with pytest.raises(DataError, match=r"at least 2 classes.*single class 'cat'"):
        load_dataset(task="classification", path=_csv(tmp_path, frame), target="label")


def test_class_too_small_to_stratify(tmp_path: Path) -> None:
    frame = _table(40)
    frame.loc[0, "label"] = "rare"
    with pytest.raises(DataError, match=r"too small to stratify.*'rare': 1"):
        load_dataset(task="classification", path=_csv(tmp_path, frame), target="label")
    frame.loc[1, "label"] = "rare"  # 2 rows: enough for train/validation, not for train/validation/test
    with pytest.raises(DataError, match=r"too small to stratify.*at least 3 rows.*'rare': 2"):
        load_dataset(task="classification", path=_csv(tmp_path, frame), target="label")
    ds = load_dataset(task="classification", path=_csv(tmp_path, frame), target="label", test_split=0.0)
    assert "rare" in ds.class_labels


def test_unstratifiable_split_is_a_data_error(tmp_path: Path) -> None:
    frame = _table(12)
    frame["label"] = np.arange(12) % 4  # 4 classes of 3 rows; a 10% validation part holds 2 rows
    with pytest.raises(DataError, match=r"cannot split 12 rows.*stratified.*scikit-learn says"):
        load_dataset(task="classification", path=_csv(tmp_path, frame), target="label", validation_split=0.1)


def test_regression_target_must_be_numeric(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"regression needs a numeric target.*'label'.*task: classification"):
        load_dataset(task="regression", path=_csv(tmp_path, _table()), target="label")


def test_the_row_scaler_is_scikit_learns_standard_scaler() -> None:
    from sweeplab.objectives.scaling import RowScaler

    rng = np.random.default_rng(1)
    X = rng.normal(5.0, 3.0, (200, 6))
    X[:, 2] = 7.25  # a constant feature: scale 1, as StandardScaler has it
    X[:, 4] = 1e9 + rng.normal(0, 1e-7, 200)  # constant within float64's error bound
    ours, theirs = RowScaler().fit(X[:150]), StandardScaler().fit(X[:150])
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-14)
    np.testing.assert_array_equal(ours.scale_ == 1.0, theirs.scale_ == 1.0)
    np.testing.assert_allclose(ours.scale_, theirs.scale_, rtol=1e-12)
    np.testing.assert_allclose(ours.transform(X[150:]), theirs.transform(X[150:]), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(X)), X, rtol=1e-12)
    with pytest.raises(ValueError, match=r"RowScaler fits rows \(n, features\)"):
        RowScaler().fit(X[:, 0])
