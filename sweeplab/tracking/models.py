"""The MLflow model of a trial: its network (an MLP or a CNN) plus its preprocessing, loadable with ``mlflow.pyfunc``.

Format (a ``pyfunc`` model saved "from code", so nothing in it is a pickle):

- ``artifacts/weights``: the framework's native weights, in a format that holds tensors
  only: PyTorch ``torch.save(model.state_dict())`` (read back with
  ``torch.load(weights_only=True)``); Keras the native ``.keras`` archive (read back with
  ``load_weights`` into the rebuilt architecture, so no layer code is deserialized);
- ``artifacts/sweeplab_model.json``: what rebuilds and feeds the network: its format
  (``sweeplab-mlp/1``, or ``sweeplab-cnn/1`` for a CNN), framework, task, model family
  (``model``; absent means ``mlp``), the family's config
  (:class:`~sweeplab.objectives.config.MLPConfig` or ``CNNConfig``), input and output
  widths (and ``input_shape``, ``(H, W, C)`` for images), the raw feature names, the
  class labels (index ``i`` -> label), and the scaler's ``mean_`` / ``scale_`` as JSON
  numbers (exact round trip of the float64 values; one per feature, or one per channel
  for images);
- ``python_model.py``: the model code (:mod:`sweeplab.tracking.pyfunc_code`), which
  names :class:`MLPModel`; loading needs ``sweeplab`` and the framework importable.

``predict`` takes RAW feature rows (a DataFrame with the feature columns, or a 2-D
array in feature order; a CNN also takes raw images, ``(n, H, W)`` or ``(n, H, W, C)``,
whose rows are their pixels in (height, width, channel) order), scales them exactly as
training did, runs the network in inference mode and returns the original class labels
(classification) or the values (regression) as a 1-D numpy array. The MLflow signature
maps raw rows to that output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import numpy as np
from mlflow.pyfunc import PythonModel

if TYPE_CHECKING:
    from sweeplab.objectives.dataset import Dataset

__all__ = ["META_FILE", "MODEL_FORMAT", "MODEL_FORMATS", "MLPModel", "model_meta", "predict_raw", "save_pyfunc_model"]

MODEL_FORMAT = "sweeplab-mlp/1"
"""The format of an MLP model (what fine-tuning, ``objective.init_from``, reads)."""
MODEL_FORMATS = {"mlp": MODEL_FORMAT, "cnn": "sweeplab-cnn/1"}
"""The format of each model family's saved model."""
META_FILE = "sweeplab_model.json"
WEIGHTS_FILES = {"torch": "weights.pt", "keras": "weights.keras"}
_CODE_FILE = Path(__file__).with_name("pyfunc_code.py")


# --------------------------------------------------------------------------- metadata


def model_meta(framework: str, config: Any, dataset: Dataset, n_outputs: int, extra: Mapping[str, Any] | None = None,
               model: str = "mlp") -> dict[str, Any]:
    """The JSON description of a trained model (see the module docstring).

    ``config`` is the trial's config of model family ``model`` (``MLPConfig`` or
    ``CNNConfig``); ``dataset`` the study's ``Dataset`` (its ``scaler``,
    ``feature_names``, ``class_labels``, ``task`` and ``input_shape`` are recorded).
    """
    scaler = getattr(dataset, "scaler", None)
    scaling = None
    if scaler is not None:
        mean = getattr(scaler, "mean_", None)
        scale = getattr(scaler, "scale_", None)
        scaling = {
            "mean": [float(v) for v in mean] if mean is not None else None,
            "scale": [float(v) for v in scale] if scale is not None else None,
        }
    cfg = asdict(config)
    cfg["hidden_units"] = [int(u) for u in cfg["hidden_units"]]
    shape = {"input_shape": list(dataset.input_shape)} if model != "mlp" else {}
    return {
        "format": MODEL_FORMATS[model],
        "framework": framework,
        "task": dataset.task,
        **({"model": model} if model != "mlp" else {}),
        "config": cfg,
        "n_features": int(dataset.n_features),
        **shape,
        "n_outputs": int(n_outputs),
        "feature_names": [str(c) for c in dataset.feature_names],
        "class_labels": list(dataset.class_labels),
        "scaler": scaling,
        "weights": WEIGHTS_FILES[framework],
        **dict(extra or {}),
    }


def _to_matrix(meta: Mapping[str, Any], model_input: Any) -> np.ndarray:
    """Raw rows as a float64 matrix in the training feature order."""
    import pandas as pd

    names = list(meta["feature_names"])
    if isinstance(model_input, pd.DataFrame):
        if all(n in model_input.columns for n in names):
            frame = model_input[names]
        elif model_input.shape[1] == len(names):
            frame = model_input
        else:
            missing = [n for n in names if n not in model_input.columns]
            raise ValueError(f"input rows lack feature column(s) {missing[:10]}; expected columns {names[:20]}")
        X = frame.to_numpy(dtype=np.float64)
    else:
        X = np.asarray(model_input, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        elif X.ndim > 2 and meta.get("input_shape"):  # raw images: one row of pixels each
            X = X.reshape(len(X), -1)
    if X.ndim != 2 or X.shape[1] != int(meta["n_features"]):
        raise ValueError(f"expected rows of {meta['n_features']} raw features, got shape {tuple(X.shape)}")
    return X


def predict_raw(meta: Mapping[str, Any], model: Any, model_input: Any) -> np.ndarray:
    """Scale raw rows as training did, predict, decode: labels (classification) or values.

    Scaling is the study's scaler's arithmetic (:mod:`sweeplab.objectives.scaling`) on
    float64, then float32, so the network sees bit-identical inputs to the ones it was
    trained and evaluated on.
    """
    from sweeplab.objectives.evaluation import predict_indices

    X = _to_matrix(meta, model_input)
    if meta.get("input_shape"):  # images: the rows take their shape, the scaler works per channel
        X = X.reshape(len(X), *(int(n) for n in meta["input_shape"]))
    scaling = meta.get("scaler") or {}
    if scaling.get("mean") is not None:
        X = X - np.asarray(scaling["mean"], dtype=np.float64)
    if scaling.get("scale") is not None:
        X = X / np.asarray(scaling["scale"], dtype=np.float64)
    out = predict_indices(str(meta["framework"]), model, X.astype(np.float32), str(meta["task"]))
    if meta["task"] == "classification" and meta.get("class_labels"):
        labels = np.asarray(meta["class_labels"])
        return labels[np.asarray(out, dtype=np.int64)]
    return np.asarray(out)


# --------------------------------------------------------------------------- weights


def _config_of(meta: Mapping[str, Any]) -> Any:
    from sweeplab.objectives.config import config_type

    return config_type(str(meta.get("model", "mlp"))).from_params(dict(meta["config"]))


def write_weights(framework: str, model: Any, path: str | os.PathLike[str]) -> None:
    """Write ``model``'s weights to ``path`` in the framework's tensor-only format."""
    if framework == "torch":
        import torch

        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        torch.save(state, str(path))
    elif framework == "keras":
        model.save(str(path))
    else:
        raise ValueError(f"framework must be torch or keras, got {framework!r}")


def load_network(meta: Mapping[str, Any], weights_path: str | os.PathLike[str]) -> Any:
    """Rebuild the network described by ``meta`` and load its weights (CPU, inference mode)."""
    cfg = _config_of(meta)
    input_shape = tuple(int(n) for n in meta.get("input_shape") or (meta["n_features"],))
    plan = cfg.plan(input_shape, int(meta["n_outputs"]), str(meta["task"]))
    framework = meta["framework"]
    if framework == "torch":
        import torch

        from sweeplab.objectives.torch_mlp import build_network as build_torch

        model = build_torch(plan)
        state = torch.load(str(weights_path), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval()
        return model
    if framework == "keras":
        from sweeplab.objectives.keras_mlp import build_network as build_keras

        model = build_keras(plan, cfg)
        model.load_weights(str(weights_path))
        return model
    raise ValueError(f"unknown framework {framework!r} in {META_FILE}; expected torch or keras")


# --------------------------------------------------------------------------- pyfunc


class MLPModel(PythonModel):
    """``mlflow.pyfunc`` wrapper: raw feature rows in, class labels (or values) out.

    ``predict``'s input has no type hint on purpose: MLflow would derive the signature
    from it, while this model's signature (raw feature columns -> labels) is logged
    explicitly. ``_skip_type_hint_validation`` (what MLflow's own wrappers set) stops
    MLflow from warning about the missing hint at every import.
    """

    _skip_type_hint_validation = True

    def load_context(self, context: Any) -> None:
        """Read ``sweeplab_model.json`` and rebuild the network with its weights."""
        with open(context.artifacts["meta"], encoding="utf-8") as fh:
            self.meta = json.load(fh)
        if self.meta.get("format") not in MODEL_FORMATS.values():
            raise ValueError(f"unsupported sweeplab model format {self.meta.get('format')!r}; expected one of "
                             f"{', '.join(MODEL_FORMATS.values())}")
        self.model = load_network(self.meta, context.artifacts["weights"])

    def predict(self, context: Any, model_input, params: dict[str, Any] | None = None) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Predict raw rows (a DataFrame or a 2-D array): see :func:`predict_raw`."""
        return predict_raw(self.meta, self.model, model_input)


def pip_requirements(framework: str) -> list[str]:
    """Pinned requirements of a model of ``framework`` (what this process runs)."""

    def pin(dist: str) -> str | None:
        try:
            return f"{dist}=={importlib_metadata.version(dist).split('+')[0]}"
        except importlib_metadata.PackageNotFoundError:
            return None

    names = ["mlflow", "numpy", "pandas", "scikit-learn", "sweeplab"]
    if framework == "torch":
        names.append("torch")
    else:
        names += ["keras", "tensorflow-cpu", "tensorflow"]
    return [p for p in (pin(n) for n in names) if p]


def save_pyfunc_model(
    path: str | os.PathLike[str],
    framework: str,
    model: Any,
    meta: Mapping[str, Any],
    raw_example: Any,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Save ``model`` with ``meta`` as an MLflow pyfunc model directory at ``path``.

    The signature is inferred from ``raw_example`` (a few raw rows, a DataFrame) and this
    model's own predictions for them, which also serve as the input example. Saving is
    local (no tracking server): the caller uploads the folder. ``path`` must not exist.
    """
    import tempfile

    from mlflow.models import infer_signature

    with tempfile.TemporaryDirectory(prefix="sweeplab-model-") as tmp:
        weights = Path(tmp) / WEIGHTS_FILES[framework]
        write_weights(framework, model, weights)
        meta_path = Path(tmp) / META_FILE
        meta_path.write_text(json.dumps(dict(meta), indent=2, default=str), encoding="utf-8")
        predictions = predict_raw(meta, model, raw_example)
        signature = infer_signature(raw_example, predictions)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(_CODE_FILE),
            artifacts={"weights": str(weights), "meta": str(meta_path)},
            signature=signature,
            input_example=raw_example,
            pip_requirements=pip_requirements(framework),
            metadata={"sweeplab_format": MODEL_FORMAT, "framework": framework, **dict(metadata or {})},
        )


def read_tree(root: str | os.PathLike[str], prefix: str = "") -> dict[str, bytes]:
    """Every file under ``root`` as ``{prefix + relative posix path: bytes}``."""
    out: dict[str, bytes] = {}
    base = Path(root)
    for file in sorted(base.rglob("*")):
        if file.is_file() and "__pycache__" not in file.parts:
            out[prefix + file.relative_to(base).as_posix()] = file.read_bytes()
    return out

