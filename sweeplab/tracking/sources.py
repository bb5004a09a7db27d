"""Source models for transfer learning: download a sweeplab model from MLflow and read its
hidden layers into a framework-neutral :class:`~sweeplab.objectives.transfer.SourceModel`
(see :mod:`sweeplab.objectives.transfer` for how trials fine-tune it)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sweeplab.objectives.transfer import HiddenLayer, SourceModel, TransferError
from sweeplab.spaces.architecture import batch_norm_layer_name, dense_layer_name

__all__ = ["fetch_source_model", "source_from_dir"]


def fetch_source_model(uri: str, tracking_uri: str | None = None) -> SourceModel:
    """Download the model at ``uri`` once and read its hidden layers (see the module docstring).

    ``tracking_uri`` (and the registry, unless ``$MLFLOW_REGISTRY_URI`` names another one)
    is where ``models:/`` and ``runs:/`` URIs are resolved. Raises TransferError when the
    model cannot be downloaded or is not a sweeplab model.
    """
    import mlflow.artifacts

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    registry_uri = os.environ.get("MLFLOW_REGISTRY_URI") or tracking_uri
    with tempfile.TemporaryDirectory(prefix="sweeplab-init-from-") as tmp:
        try:
            location = _resolve_models_uri(uri, tracking_uri, registry_uri) if uri.startswith("models:/") else uri
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=registry_uri
            )
        except Exception as exc:
            raise TransferError(
                f"objective.init_from: cannot download {uri!r} from the MLflow store {tracking_uri}: "
                f"{type(exc).__name__}: {str(exc)[:500]}. Check the model name and alias or version "
                "(`sweeplab promote STUDY --model-name NAME` registers models:/NAME@champion) and --tracking-uri"
            ) from exc
        return source_from_dir(local, uri)


def _resolve_models_uri(uri: str, tracking_uri: str | None, registry_uri: str | None) -> str:
    """Where the registered model ``models:/NAME@ALIAS`` (or ``/VERSION``, ``/latest``) stores its files.

    Resolved with a client bound to this study's registry: MLflow's own ``models:/``
    resolution in ``download_artifacts`` asks the process-wide registry URI instead.
    """
    from mlflow.store.artifact.utils.models import get_model_name_and_version
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=registry_uri)
    found = get_model_name_and_version(client, uri)
    if len(found) == 1:  # models:/m-<id>: a logged model
        return str(client.get_logged_model(found[0]).artifact_location)
    name, version = found
    return str(client.get_model_version_download_uri(name, version))


def source_from_dir(path: str | os.PathLike[str], uri: str = "") -> SourceModel:
    """Read a downloaded sweeplab model folder (the pyfunc ``model/`` folder, or a run's artifacts holding one).

    Rebuilds the network with its own framework on CPU (imported here) and copies the
    hidden layers out as numpy arrays.
    """
    from sweeplab.tracking.models import META_FILE, MODEL_FORMAT, load_network

    uri = uri or str(path)
    found = sorted(Path(path).rglob(META_FILE), key=lambda p: (len(p.parts), str(p)))
    if not found:
        raise TransferError(
            f"objective.init_from: {uri} is not a sweeplab model (no {META_FILE} in it); give the `model` folder of "
            "a sweeplab run (runs:/RUN_ID/model) or a model registered by `sweeplab promote` (models:/NAME@champion)"
        )
    meta_path = found[0]
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != MODEL_FORMAT:
        raise TransferError(
            f"objective.init_from: {uri} holds a sweeplab model of format {meta.get('format')!r}; "
            f"this version reads {MODEL_FORMAT}"
        )
    weights = meta_path.parent / str(meta.get("weights", ""))
    if not weights.is_file():
        raise TransferError(f"objective.init_from: {uri} lacks its weights file {meta.get('weights')!r}")
    framework = str(meta["framework"])
    network = load_network(meta, weights)
    if framework == "torch":
        layers = _torch_layers(network)
    elif framework == "keras":
        layers = _keras_layers(network, len(meta["config"]["hidden_units"]), bool(meta["config"].get("batch_norm")))
    else:  # pragma: no cover - load_network refuses other frameworks
        raise TransferError(f"objective.init_from: {uri} has framework {framework!r}; expected torch or keras")
    return SourceModel(
        uri=uri,
        framework=framework,
        task=str(meta["task"]),
        n_features=int(meta["n_features"]),
        n_outputs=int(meta["n_outputs"]),
        config=dict(meta["config"]),
        layers=tuple(layers),
        feature_names=tuple(str(n) for n in meta.get("feature_names", [])),
    )


def _f32(value: Any) -> np.ndarray:
    return np.array(value, dtype=np.float32, copy=True)


def _torch_layers(model: Any) -> list[HiddenLayer]:
    """Hidden layers of a torch ``nn.Sequential`` built by ``torch_mlp.build_model``."""
    from torch import nn

    linears = [m for m in model if isinstance(m, nn.Linear)]
    norms = [m for m in model if isinstance(m, nn.BatchNorm1d)]
    layers = []
    for i, linear in enumerate(linears[:-1]):
        bn = None
        if norms:
            state = norms[i].state_dict()
            bn = tuple(_f32(state[k].cpu().numpy()) for k in ("weight", "bias", "running_mean", "running_var"))
        layers.append(HiddenLayer(kernel=_f32(linear.weight.detach().cpu().numpy().T),
                                  bias=_f32(linear.bias.detach().cpu().numpy()), batch_norm=bn))  # type: ignore[arg-type]
    return layers


def _keras_layers(model: Any, n_hidden: int, batch_norm: bool) -> list[HiddenLayer]:
    """Hidden layers of a Keras model built by ``keras_mlp.build_model`` (layers named by
    ``dense_layer_name`` / ``batch_norm_layer_name``)."""
    layers = []
    for i in range(n_hidden):
        kernel, bias = model.get_layer(dense_layer_name(i)).get_weights()
        bn = tuple(_f32(w) for w in model.get_layer(batch_norm_layer_name(i)).get_weights()) if batch_norm else None
        layers.append(HiddenLayer(kernel=_f32(kernel), bias=_f32(bias), batch_norm=bn))  # type: ignore[arg-type]
    return layers
