"""The objective contract (:class:`sweeplab.objectives.mlp.MLPObjective`) for model family ``cnn``, on every framework.

The MLP's contract suite (``test_mlp_contract.py``) runs on rows; this one runs the same
promises on images (tiny CNNs on scikit-learn's digits, 1-3 epochs): the network is its
plan, reports and the epoch policy are the MLP's, training is seeded, and a dataset of
the wrong kind is refused. Each test runs once per backend.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sweeplab_image_kit import DIGITS, IMAGE_CLS_KEYS, brightness_images, cnn_ctx, digits_images
from sweeplab_mlp_kit import CLS, PruneAt, without_time

from sweeplab.core.errors import DataError
from sweeplab.objectives.base import NullReporter, TrialPruned
from sweeplab.objectives.config import CNNConfig
from sweeplab.objectives.training import batch_bounds
from sweeplab.registry.names import MLP_FRAMEWORKS


@dataclass(frozen=True)
class Backend:
    name: str
    module: Any

    def objective(self) -> Any:
        return self.module.TorchMLPObjective() if self.name == "torch" else self.module.KerasMLPObjective()

    def build(self, plan: Any) -> Any:
        if self.name == "torch":
            return self.module.build_network(plan)
        return self.module.build_network(plan, CNNConfig())

    def weights(self, model: Any) -> list[np.ndarray]:
        if self.name == "torch":
            return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]
        return [np.array(w) for w in model.get_weights()]


@pytest.fixture(scope="module", params=MLP_FRAMEWORKS)
def backend(request: pytest.FixtureRequest) -> Backend:
    name = request.param
    pytest.importorskip({"torch": "torch", "keras": "tensorflow"}[name])
    return Backend(name, importlib.import_module(f"sweeplab.objectives.{name}_mlp"))


@pytest.mark.parametrize(
    "cfg",
    [
        CNNConfig(n_blocks=2, filters=4, hidden_units=(16,)),
        CNNConfig(n_blocks=3, filters=3, filter_growth=1.5, kernel_size=2, pooling="avg", batch_norm=True,
                  conv_dropout=0.1, hidden_units=()),
        CNNConfig(n_blocks=1, filters=5, pooling="none", hidden_units=(8, 4), batch_norm=True),
    ],
    ids=["plain", "growth-even-kernel-bn", "no-pooling"],
)
def test_count_params_is_the_plans(backend: Backend, cfg: CNNConfig) -> None:
    plan = cfg.plan((8, 8, 1), 10)
    model = backend.build(plan)
    assert backend.module.count_params(model) == plan.n_params
    out = backend.module.predict(model, DIGITS.X_val[:7], "classification")
    assert out.dtype == np.int64 and out.shape == (7,)


def test_predict_is_inference_mode_and_checks_its_input(backend: Backend) -> None:
    plan = CNNConfig(n_blocks=1, filters=4, conv_dropout=0.5, dropout=0.5, hidden_units=(8,)).plan((8, 8, 1), 10)
    model = backend.build(plan)
    first = backend.module.predict(model, DIGITS.X_val, "classification")
    assert np.array_equal(first, backend.module.predict(model, DIGITS.X_val, "classification"))  # dropout is off
    with pytest.raises(ValueError, match="2-D array"):
        backend.module.predict(model, DIGITS.X_val[:, :, :, 0], "classification")  # (n, 8, 8): no channel axis


def test_classification_learns_digits_and_reports_every_epoch(backend: Backend) -> None:
    reporter = NullReporter()
    params = {"n_blocks": 2, "filters": 8, "hidden_units": [32], "learning_rate": 0.01, "batch_size": 32}
    obj = backend.objective()
    out = obj.run(cnn_ctx(params, epochs=3, reporter=reporter))
    assert out["val_accuracy"] > 0.8 and out["test_accuracy"] > 0.75, out
    assert [e for e, _ in reporter.history] == [1, 2, 3]
    assert all(set(m) == IMAGE_CLS_KEYS for _, m in reporter.history)
    assert [m for _, m in reporter.history] == obj.history
    assert out["n_params"] == obj.plan.n_params == backend.module.count_params(obj.model)
    assert obj.config == CNNConfig.from_params(params)
    val_losses = [h["val_loss"] for h in obj.history]
    assert out["best_epoch"] == 1 + val_losses.index(min(val_losses))
    pred = backend.module.predict(obj.model, DIGITS.X_val, "classification")
    assert float((pred == DIGITS.y_val).mean()) == pytest.approx(out["val_accuracy"])  # best weights restored


def test_regression_on_images_learns(backend: Backend) -> None:
    ds = brightness_images()
    params = {"n_blocks": 1, "filters": 4, "pooling": "none", "hidden_units": [16], "learning_rate": 0.01,
              "batch_size": 16}
    obj = backend.objective()
    out = obj.run(cnn_ctx(params, dataset=ds, epochs=8))
    assert {"val_loss", "val_mae", "test_mae"} <= set(out) and "val_accuracy" not in out
    assert out["val_loss"] < 0.3, out  # targets are standardized: 1.0 is the constant predictor
    pred = backend.module.predict(obj.model, ds.X_val, "regression")
    assert pred.dtype == np.float32 and pred.shape == (len(ds.y_val),)
    assert float(np.abs(pred - ds.y_val).mean()) == pytest.approx(out["val_mae"], rel=1e-4)


def test_deterministic_for_same_context_and_seed_dependent(backend: Backend) -> None:
    params = {"n_blocks": 2, "filters": 4, "batch_norm": True, "conv_dropout": 0.2, "dropout": 0.2,
              "hidden_units": [8], "batch_size": 64}
    obj = backend.objective()
    out_a = obj.run(cnn_ctx(params, seed=11))
    history_a, weights_a = obj.history, backend.weights(obj.model)
    out_c = obj.run(cnn_ctx(params, seed=12))
    obj.run(cnn_ctx({"filters": 2}, epochs=1, seed=4))
    out_b = obj.run(cnn_ctx(params, seed=11))
    assert without_time(out_a) == without_time(out_b)
    assert history_a == obj.history
    for wa, wb in zip(weights_a, backend.weights(obj.model), strict=True):
        assert np.array_equal(wa, wb)
    assert without_time(out_a) != without_time(out_c)


def test_pruning_stops_training_and_propagates(backend: Backend) -> None:
    reporter = PruneAt(2)
    obj = backend.objective()
    with pytest.raises(TrialPruned) as info:
        obj.run(cnn_ctx({}, epochs=5, reporter=reporter))
    assert info.value.epoch == 2 and reporter.epochs == [1, 2] and len(obj.history) == 2


def test_early_stopping_on_plateau_restores_best(backend: Backend) -> None:
    params = {"optimizer": "sgd", "learning_rate": 1e-7, "momentum": 0.0}
    es = SimpleNamespace(patience=2, min_delta=1e-3, monitor="val_loss")
    obj = backend.objective()
    out = obj.run(cnn_ctx(params, epochs=20, early_stopping=es))
    losses = [h["val_loss"] for h in obj.history]
    assert out["epochs_trained"] == 3 and out["val_loss"] == min(losses)


def test_huge_learning_rate_raises_floating_point_error(backend: Backend) -> None:
    reporter = NullReporter()
    with pytest.raises(FloatingPointError, match=r"loss became (nan|inf) at epoch \d+; lower learning_rate"):
        backend.objective().run(cnn_ctx({"optimizer": "sgd", "learning_rate": 1e7, "filters": 8}, epochs=10,
                                        reporter=reporter))
    assert all(math.isfinite(m["loss"]) for _, m in reporter.history)


def test_batch_norm_with_single_row_last_batch_and_no_test_part(backend: Backend) -> None:
    ds = digits_images(n_train=101, n_val=40, test=False)
    assert batch_bounds(101, 50, merge_singleton=True)[-1] == (50, 101)
    out = backend.objective().run(cnn_ctx({"batch_norm": True, "batch_size": 50}, dataset=ds, epochs=1))
    assert not any(k.startswith("test_") for k in out) and math.isfinite(out["val_loss"])


def test_a_dataset_of_the_wrong_kind_is_refused(backend: Backend) -> None:
    with pytest.raises(DataError, match=r"model cnn trains on images \(n, H, W, C\), but dataset 'cls' holds"):
        backend.objective().run(cnn_ctx({}, dataset=CLS))
    with pytest.raises(DataError, match=r"model mlp trains on rows \(n, n_features\), but dataset 'digits-images'"):
        backend.objective().run(cnn_ctx({}, model="mlp"))
