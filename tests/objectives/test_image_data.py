"""Image datasets: digits as 8x8x1 images, a user's .npz, the per-channel scaling rule, and the refusals."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sweeplab_image_kit import write_npz

from sweeplab.core.errors import DataError
from sweeplab.objectives.data import ImageScaler, load_dataset, load_raw


def test_digits_are_images_for_a_cnn_and_rows_for_an_mlp() -> None:
    cnn = load_dataset(task="classification", name="digits", model="cnn", seed=3)
    mlp = load_dataset(task="classification", name="digits", seed=3)
    assert cnn.X_train.shape[1:] == (8, 8, 1) and cnn.input_shape == (8, 8, 1) and cnn.n_features == 64
    assert mlp.X_train.shape[1:] == (64,) and mlp.input_shape == (64,)
    assert cnn.X_train.dtype == np.float32 and cnn.info["image_shape"] == [8, 8, 1]
    # the same split, the same images: only the scaling differs (per channel vs per pixel)
    assert np.array_equal(cnn.y_train, mlp.y_train) and np.array_equal(cnn.y_test, mlp.y_test)
    raw_cnn = cnn.scaler.inverse_transform(cnn.X_val).reshape(len(cnn.X_val), -1)
    np.testing.assert_allclose(raw_cnn, mlp.scaler.inverse_transform(mlp.X_val), atol=1e-5)
    assert set(np.round(raw_cnn.ravel()).astype(int)) <= set(range(17))  # digits' pixels are 0..16


def test_images_are_standardized_per_channel_on_the_training_part_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = np.stack([rng.normal(5.0, 2.0, (60, 4, 4)), rng.normal(-3.0, 0.5, (60, 4, 4)),
                       np.full((60, 4, 4), 7.0)], axis=-1)  # channel 2 is constant
    labels = np.repeat(["cat", "dog", "eel"], 20)
    path = write_npz(tmp_path / "imgs.npz", X=images, y=labels)
    ds = load_dataset(task="classification", path=str(path), model="cnn", seed=1)
    assert ds.input_shape == (4, 4, 3) and ds.class_labels == ("cat", "dog", "eel")
    assert ds.scaler.mean_.shape == ds.scaler.scale_.shape == (3,)
    train = ds.X_train.astype(np.float64)
    np.testing.assert_allclose(train.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 1, 2))[:2], 1.0, atol=1e-5)
    assert ds.scaler.scale_[2] == 1.0 and np.all(ds.X_train[..., 2] == 0.0)  # a constant channel is only centred
    # validation images use the training statistics: undoing the scaling gives the raw images back
    raw = ds.scaler.inverse_transform(ds.X_val)
    assert any(np.allclose(raw[0], img, atol=1e-4) for img in images)
    assert abs(ds.X_val[..., 0].mean()) > 1e-4  # not re-standardized on its own


def test_npz_images_without_a_channel_and_rows_for_an_mlp(tmp_path: Path) -> None:
    images = np.random.default_rng(1).integers(0, 255, (30, 5, 6)).astype(np.uint8)
    path = write_npz(tmp_path / "gray.npz", X=images, y=np.arange(30) % 3)
    cnn = load_dataset(task="classification", path=str(path), model="cnn")
    assert cnn.input_shape == (5, 6, 1) and cnn.feature_names[:2] == ("pixel_0_0", "pixel_0_1")
    mlp = load_dataset(task="classification", path=str(path))
    assert mlp.input_shape == (30,) and mlp.scaler.mean_.shape == (30,)  # flattened, scaled per pixel
    X, y = load_raw(task="classification", path=str(path), model="cnn")
    assert isinstance(X, pd.DataFrame) and X.shape == (30, 30) and y.name == "y"
    assert np.array_equal(X.to_numpy().reshape(30, 5, 6), images)  # rows hold the pixels in (h, w) order
    rows = write_npz(tmp_path / "rows.npz", X=np.random.default_rng(2).normal(size=(40, 3)),
                     y=np.linspace(0, 1, 40))
    reg = load_dataset(task="regression", path=str(rows))
    assert reg.feature_names == ("x0", "x1", "x2") and reg.y_train.dtype == np.float32


@pytest.mark.parametrize(("arrays", "model", "fragment"), [
    ({"X": np.zeros((20, 8, 8))}, "cnn", "the file holds `X` but needs `y`"),
    ({"features": np.zeros((20, 8, 8)), "labels": np.arange(20)}, "cnn", "needs `X` and `y`"),
    ({"X": np.zeros((20, 64)), "y": np.arange(20)}, "cnn",
     "`X` must have shape (N, H, W) or (N, H, W, C), got (20, 64)"),
    ({"X": np.zeros((20, 2, 2, 2, 2)), "y": np.arange(20)}, "mlp", "`X` must hold one row per example"),
    ({"X": np.zeros((20, 8, 8)), "y": np.arange(19)}, "cnn", "`X` has 20 examples but `y` has 19"),
    ({"X": np.zeros((5, 8, 8)), "y": np.arange(5)}, "cnn", "only 5 example(s); at least 10"),
    ({"X": np.array([["a"] * 4] * 20), "y": np.arange(20)}, "mlp", "`X` must hold numbers"),
])
def test_bad_npz_files_are_data_errors(tmp_path: Path, arrays: dict, model: str, fragment: str) -> None:
    path = write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=r"objective\.dataset\.path: .*bad\.npz: .*" + re.escape(fragment)):
        load_dataset(task="classification", path=str(path), model=model)


def test_a_table_cannot_train_a_cnn(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"objective\.dataset\.name: model cnn trains on images, but dataset 'iris'"):
        load_dataset(task="classification", name="iris", model="cnn")
    pd.DataFrame({"a": range(20), "y": [0, 1] * 10}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"use a named image set \(digits\) or an \.npz file"):
        load_dataset(task="classification", path=str(tmp_path / "t.csv"), target="y", model="cnn")
    with pytest.raises(DataError, match=r"file not found"):
        load_dataset(task="classification", path=str(tmp_path / "none.npz"), model="cnn")
    with pytest.raises(DataError, match=r"unknown option\(s\) \['sep'\]"):
        write_npz(tmp_path / "ok.npz", X=np.zeros((20, 4, 4)), y=np.arange(20) % 2)
        load_dataset(task="classification", path=str(tmp_path / "ok.npz"), model="cnn", options={"sep": ";"})


def test_image_scaler_round_trip_and_refusals() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, (10, 3, 3, 2))
    scaler = ImageScaler().fit(x)
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(x)), x)
    with pytest.raises(ValueError, match=r"fits images \(n, H, W, C\)"):
        ImageScaler().fit(x.reshape(10, -1))
    with pytest.raises(ValueError, match="not fitted"):
        ImageScaler().transform(x)
