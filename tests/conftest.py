"""Shared fixtures: a local Ray for the whole session, private stores per test."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SUPPORT = Path(__file__).parent / "support"
ROOT = Path(__file__).parent.parent

# Ray workers inherit the environment of the process that starts Ray: the analytic
# test objectives must be importable there too.
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(SUPPORT), os.environ.get("PYTHONPATH", "")) if p)
sys.path.insert(0, str(SUPPORT))
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.pop("RAY_ADDRESS", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("SWEEPLAB_STORAGE", None)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (2 CPUs) shared by the in-process study tests."""
    import ray

    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def store_templates(tmp_path_factory):
    """Empty MLflow and Optuna SQLite stores with their schemas, created once.

    Creating MLflow's SQLite schema runs ~50 migrations (about 8 s here); tests copy
    these files instead of paying that for every fresh store.
    """
    import optuna
    from mlflow.tracking import MlflowClient

    base = tmp_path_factory.mktemp("templates")
    MlflowClient(f"sqlite:///{base / 'mlflow.db'}").search_experiments()
    optuna.storages.RDBStorage(f"sqlite:///{base / 'optuna.db'}")
    return base


@pytest.fixture
def stores(tmp_path, store_templates):
    """Private Optuna storage and MLflow tracking URIs under tmp_path (schemas ready)."""
    import shutil

    shutil.copy(store_templates / "mlflow.db", tmp_path / "mlflow.db")
    shutil.copy(store_templates / "optuna.db", tmp_path / "optuna.db")
    return {
        "storage": f"sqlite:///{tmp_path / 'optuna.db'}",
        "tracking": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "dir": tmp_path,
    }


def services_required() -> bool:
    return bool(os.environ.get("SWEEPLAB_REQUIRE_SERVICES"))
