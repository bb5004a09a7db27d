"""Transfer learning (the guide's exercise 5): fine-tune a sweeplab model on a new task.

A study with ``objective.init_from: models:/NAME@champion`` (or ``models:/NAME/VERSION``,
``runs:/RUN_ID/model``, a ``file:`` URI of a model folder) starts every trial from the
hidden layers of that model:

1. the driver downloads the model's artifacts ONCE (:func:`fetch_source_model`, with the
   study's tracking URI) and reads the sweeplab pyfunc model saved by
   :mod:`sweeplab.tracking.models`: ``artifacts/sweeplab_model.json`` gives the
   :class:`~sweeplab.objectives.config.MLPConfig` and the input/output widths,
   ``artifacts/weights.*`` the weights. The hidden layers become a :class:`SourceModel`
   (numpy arrays, framework-neutral: kernels in ``(fan_in, units)`` layout), which
   :func:`attach_source` puts on the study's :class:`~sweeplab.objectives.dataset.Dataset`,
   so it reaches every trial (and the end-of-study re-fit, ``promote`` and ``audit``)
   through Ray's object store with the arrays;
2. each trial (:func:`plan_trial`) takes the source's architecture (``hidden_units``,
   ``batch_norm``, ``activation``; the space may not search them), copies the hidden
   layers' weights (BatchNorm scale, shift and running statistics included), builds a NEW
   output layer for this task's outputs (freshly initialised with the trial's seed), and
   freezes the first ``n_frozen_layers`` hidden layers (default 0: everything is
   fine-tuned). ``finetune_learning_rate``, when given, is the learning rate. Frozen
   layers keep their weights exactly: torch sets ``requires_grad=False`` and keeps their
   BatchNorm in inference mode; Keras sets ``layer.trainable = False`` (which also runs
   BatchNormalization in inference mode).

The input layer is kept, so the new task must have the source's number of features
(a :class:`~sweeplab.errors.DataError` names both numbers otherwise). Torch and Keras
sources fine-tune into either framework (the weights are plain arrays).

A fine-tuned trial reports ``n_params`` as the whole network's parameter count (what
``constraints.max_params`` bounds) and ``n_trainable_params`` as the part it trained.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sweeplab.errors import DataError, SweeplabError

__all__ = [
    "ARCHITECTURE_KEYS",
    "HiddenLayer",
    "SourceModel",
    "TransferError",
    "TransferPlan",
    "attach_source",
    "fetch_source_model",
    "plan_trial",
    "source_from_dir",
]

ARCHITECTURE_KEYS = ("hidden_units", "batch_norm", "activation")
"""The resolved params an ``init_from`` trial takes from its source model."""


class TransferError(SweeplabError):
    """``objective.init_from`` names no usable sweeplab model (missing, not a sweeplab model)."""

    exit_code = 2


@dataclass(frozen=True)
class HiddenLayer:
    """One hidden layer of a source model, as float32 numpy arrays.

    ``kernel``: ``(fan_in, units)`` (Keras' layout; torch's ``Linear.weight`` is its
    transpose); ``bias``: ``(units,)``; ``batch_norm``: ``(gamma, beta, moving_mean,
    moving_variance)`` when the layer has BatchNorm, else None.
    """

    kernel: np.ndarray
    bias: np.ndarray
    batch_norm: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def n_params(self) -> int:
        """Trainable parameters of this layer (kernel, bias, BatchNorm's gamma and beta)."""
        bn = 2 * int(self.bias.shape[0]) if self.batch_norm is not None else 0
        return int(self.kernel.size + self.bias.size) + bn


@dataclass(frozen=True)
class SourceModel:
    """The hidden layers of a trained sweeplab model, ready to fine-tune (see the module docstring)."""

    uri: str
    framework: str
    task: str
    n_features: int
    n_outputs: int
    config: Mapping[str, Any]
    layers: tuple[HiddenLayer, ...]
    feature_names: tuple[str, ...] = ()

    @property
    def n_hidden(self) -> int:
        """Number of hidden layers (what ``n_frozen_layers`` counts)."""
        return len(self.layers)

    def architecture(self) -> dict[str, Any]:
        """``hidden_units``, ``batch_norm`` and ``activation`` of the source (the trial's params)."""
        return {
            "hidden_units": [int(layer.bias.shape[0]) for layer in self.layers],
            "batch_norm": bool(self.config.get("batch_norm", False)),
            "activation": str(self.config.get("activation", "relu")),
        }

    def check_features(self, n_features: int, dataset_name: str = "the dataset") -> None:
        """Raise DataError unless the new task has the source's number of input features."""
        if int(n_features) != self.n_features:
            raise DataError(
                f"objective.init_from: the source model {self.uri} takes {self.n_features} input features, but "
                f"{dataset_name} has {int(n_features)}; fine-tuning keeps the input layer, so the new task needs "
                f"the same {self.n_features} features (in the same order and meaning)"
            )


@dataclass(frozen=True)
class TransferPlan:
    """How one trial fine-tunes: the source and how many hidden layers (from the input side) stay frozen."""

    source: SourceModel
    n_frozen: int

    @property
    def frozen_params(self) -> int:
        """Parameters of the frozen layers (not trained)."""
        return sum(layer.n_params for layer in self.source.layers[: self.n_frozen])


# --------------------------------------------------------------------------- driver side


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
    """Hidden layers of a Keras model built by ``keras_mlp.build_model`` (layers ``dense_i`` / ``bn_i``)."""
    layers = []
    for i in range(n_hidden):
        kernel, bias = model.get_layer(f"dense_{i}").get_weights()
        bn = tuple(_f32(w) for w in model.get_layer(f"bn_{i}").get_weights()) if batch_norm else None
        layers.append(HiddenLayer(kernel=_f32(kernel), bias=_f32(bias), batch_norm=bn))  # type: ignore[arg-type]
    return layers


def attach_source(dataset: Any, source: SourceModel) -> Any:
    """``dataset`` with ``init_from=source`` after checking the input widths match (DataError otherwise)."""
    source.check_features(dataset.n_features, f"dataset {getattr(dataset, 'name', 'dataset')!r}")
    return replace(dataset, init_from=source)


# --------------------------------------------------------------------------- trial side


def plan_trial(params: Mapping[str, Any], dataset: Any) -> tuple[dict[str, Any], TransferPlan | None]:
    """The trial's MLP params and its transfer plan (None when the dataset carries no source model).

    With a source: ``n_frozen_layers`` (default 0) and ``finetune_learning_rate`` are taken
    out of the params (the latter becomes ``learning_rate``) and the source's architecture
    replaces ``hidden_units`` / ``batch_norm`` / ``activation``. Raises DataError when the
    input widths differ, ValueError when ``n_frozen_layers`` exceeds the source's hidden layers.
    """
    source: SourceModel | None = getattr(dataset, "init_from", None)
    out = dict(params)
    if source is None:
        return out, None
    source.check_features(dataset.n_features, f"dataset {getattr(dataset, 'name', 'dataset')!r}")
    n_frozen = int(out.pop("n_frozen_layers", 0))
    lr = out.pop("finetune_learning_rate", None)
    if lr is not None:
        out["learning_rate"] = float(lr)
    if not 0 <= n_frozen <= source.n_hidden:
        raise ValueError(
            f"n_frozen_layers must be in [0, {source.n_hidden}] (the hidden layers of {source.uri}), got {n_frozen}"
        )
    out.update(source.architecture())
    return out, TransferPlan(source=source, n_frozen=n_frozen)
