"""Fixtures for cluster tests: PostgreSQL, an MLflow server on it, a two-node Ray cluster."""

from __future__ import annotations

import pytest
from sweeplab_services import MlflowServer, RayCluster, create_database, drop_database, require_postgres


@pytest.fixture(scope="session")
def postgres():
    """Factory of fresh PostgreSQL databases (dropped at the end of the session)."""
    require_postgres()
    created: list[str] = []

    def make(prefix: str = "sweeplab_test") -> str:
        url = create_database(prefix)
        created.append(url)
        return url

    yield make
    for url in created:
        try:
            drop_database(url)
        except Exception:
            pass


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory):
    """A real `mlflow server` backed by PostgreSQL, serving artifacts, on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(postgres("sweeplab_mlflow"), tmp / "artifacts", tmp / "server.log")
    try:
        server.wait()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """`ray start --head` on 127.0.0.10 plus `ray start --address` on 127.0.0.11, 1 CPU each."""
    cluster = RayCluster(tmp_path_factory.mktemp("ray-cluster"))
    try:
        cluster.wait_nodes(1)
        cluster.add_worker(1)
        cluster.wait_nodes(2)
        yield cluster
    finally:
        cluster.stop()
