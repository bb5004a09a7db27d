"""Models that users' functions log (``trial.log_model``), saved with MLflow's own flavours.

:func:`save_model_files` runs on the worker, which may be on another machine and has no
MLflow run: it saves the model in a temporary folder with ``mlflow.pytorch`` (format
``pt2``: ``torch.export``, no pickle) or ``mlflow.keras`` (the native ``.keras`` archive),
with a signature inferred from an input example, and returns the folder's files. They
travel to the driver in the trial's outcome, and the study's tracker uploads them as the
child run's ``model`` artifact (tag ``sweeplab.logged_model``), so
``mlflow.pyfunc.load_model("runs:/<child run id>/model")`` predicts.

Requirements are pinned from this process's versions instead of inferred (MLflow's
inference loads the model again in a subprocess, which costs seconds per trial).
"""

from __future__ import annotations

import copy
import sys
import tempfile
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from sweeplab.tracking.models import read_tree

EXAMPLE_ROWS = 5
"""Rows of ``trial.dataset.X_train`` used as the input example when none is given."""


def model_flavor(model: Any) -> str:
    """``"pytorch"`` or ``"keras"``; TypeError for anything else (checked without importing either)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return "pytorch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        return "keras"
    raise TypeError(f"trial.log_model takes a torch.nn.Module or a keras.Model, got {type(model).__module__}."
                    f"{type(model).__qualname__}; log other files with trial.log_artifact(path)")


def _pins(*dists: str) -> list[str]:
    out = []
    for dist in dists:
        try:
            out.append(f"{dist}=={importlib_metadata.version(dist).split('+')[0]}")
        except importlib_metadata.PackageNotFoundError:
            continue
    return out


def _example(input_example: Any, dataset: Any, flavor: str) -> Any:
    """The input example as a numpy array where possible (what the signature is inferred from)."""
    example = input_example
    if example is None and dataset is not None and getattr(dataset, "X_train", None) is not None:
        example = dataset.X_train[:EXAMPLE_ROWS]
    if example is None:
        raise ValueError(f"trial.log_model: a {flavor} model needs input_example (a few rows of the model's "
                         "input, a numpy array) when the study has no objective.dataset")
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(example, torch.Tensor):
        example = example.detach().cpu().numpy()
    flags = getattr(example, "flags", None)
    if flags is not None and not flags.writeable:  # rows of the shared, read-only dataset
        example = example.copy()
    return example


def _save_torch(model: Any, example: Any, path: Path) -> None:
    import mlflow.pytorch
    import numpy as np
    import torch

    params = [p for p in model.parameters()] + [b for b in model.buffers()]
    floating = next((p.dtype for p in params if p.is_floating_point()), None)
    if isinstance(example, np.ndarray) and example.dtype.kind == "f" and floating is not None:
        example = example.astype(torch.empty((), dtype=floating).numpy().dtype, copy=False)
    on_cpu = all(p.device.type == "cpu" for p in params)
    saved = model if on_cpu else copy.deepcopy(model).to("cpu")
    was_training = model.training
    saved.eval()  # dropout and batch norm as at inference
    try:
        mlflow.pytorch.save_model(saved, str(path), input_example=example, serialization_format="pt2",
                                  pip_requirements=_pins("torch", "mlflow", "numpy"))
    finally:
        if on_cpu:
            model.train(was_training)


def _save_keras(model: Any, example: Any, path: Path) -> None:
    import mlflow.keras
    import numpy as np
    from mlflow.models import infer_signature

    if isinstance(example, np.ndarray) and example.dtype.kind == "f":
        example = example.astype(np.float32, copy=False)
    signature = infer_signature(example, np.asarray(model.predict(example, verbose=0)))
    path.mkdir()  # mlflow.keras.save_model writes the input example before it creates the folder
    mlflow.keras.save_model(model, str(path), signature=signature, input_example=example,
                            pip_requirements=_pins("keras", "tensorflow", "mlflow", "numpy"))


def save_model_files(model: Any, input_example: Any = None, dataset: Any = None) -> dict[str, bytes]:
    """Save ``model`` as an MLflow model; return its files by path relative to the model folder.

    ``input_example``: a few rows of the model's input (numpy array or torch tensor);
    default: the first rows of ``dataset.X_train``. See the module docstring.
    """
    flavor = model_flavor(model)
    example = _example(input_example, dataset, flavor)
    with tempfile.TemporaryDirectory(prefix="sweeplab-model-") as tmp:
        path = Path(tmp) / "model"
        if flavor == "pytorch":
            _save_torch(model, example, path)
        else:
            _save_keras(model, example, path)
        return read_tree(path)
