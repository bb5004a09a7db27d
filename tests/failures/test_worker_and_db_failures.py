"""Workers killed mid-trial, two drivers reaping one stale trial, database connections dropped."""

from __future__ import annotations

import multiprocessing
import threading
import time

import optuna
import pytest
from sweeplab_services import require_postgres
from sweeplab_testkit import bowl_spec, child_runs, run


@pytest.fixture
def pg_storage():

    from sweeplab_services import create_database, drop_database

    require_postgres()
    url = create_database("sweeplab_fail")
    optuna.storages.RDBStorage(url)
    yield url
    drop_database(url)


@pytest.mark.parametrize("executor", ["ray", "processes"])
def test_worker_killed_mid_trial_is_failed_and_retried(executor, request, stores, tmp_path):
    """kill_once dies on its first attempt only; kill dies every time and exhausts max_retries.
    On Ray and in worker processes of this machine alike: only the trial whose worker died
    spends a retry, and the others go on."""
    if executor == "ray":
        request.getfixturevalue("ray_local")
    spec = bowl_spec(
        trials=3, workers=2, max_retries=2, sampler={"name": "grid"},
        objective={"framework": "python", "callable": "sweeplab_test_objectives:faulty", "epochs": 1,
                   "options": {"marker_dir": str(tmp_path)}},
        space={"mode": {"type": "categorical", "choices": ["ok", "kill_once", "kill"]}},
    )
    summary = run(spec, stores, executor=executor)
    study = optuna.load_study(study_name="bowl", storage=stores["storage"])
    retries = study.user_attrs["sweeplab.retries"]
    by_mode: dict[str, list] = {}
    for t in study.trials:
        by_mode.setdefault(t.params["mode"], []).append(t)
    assert [t.state.name for t in by_mode["ok"]] == ["COMPLETE"]
    once = sorted(by_mode["kill_once"], key=lambda t: t.number)
    assert [t.state.name for t in once] == ["FAIL", "COMPLETE"]
    assert "worker died" in once[0].user_attrs["sweeplab.fail_reason"]
    if executor == "processes":
        assert "killed by SIGKILL" in once[0].user_attrs["sweeplab.fail_reason"]
    assert retries[str(once[0].number)] == once[1].number
    assert once[1].user_attrs["sweeplab.retry_of"] == once[0].number
    always = sorted(by_mode["kill"], key=lambda t: t.number)
    assert [t.state.name for t in always] == ["FAIL", "FAIL", "FAIL"]  # first try + max_retries=2, then it stops
    assert [t.user_attrs.get("sweeplab.attempt", 0) for t in always] == [0, 1, 2]
    assert str(always[-1].number) not in retries
    assert summary.n_trials == 3 and summary.n_complete == 2 and summary.n_failed == 1
    runs = {int(r.data.tags["sweeplab.trial_number"]): r for r in child_runs(stores, summary.mlflow_parent_run_id)}
    assert sorted(runs) == [t.number for t in study.trials]
    assert runs[once[0].number].data.tags["sweeplab.retried_by"] == str(once[1].number)


def _reap(storage: str):
    from sweeplab.search.coordinator import StudyCoordinator

    spec = bowl_spec(trials=5).to_dict()
    return [r.number for r in StudyCoordinator(spec, storage).reap_stale()]


def test_two_drivers_reaping_one_stale_trial_make_one_transition_and_one_retry(pg_storage):
    from sweeplab.search.coordinator import StudyCoordinator

    spec = bowl_spec(trials=5).to_dict()
    dead = StudyCoordinator(spec, pg_storage, lease_seconds=0.5)
    ticket = dead.ask()
    time.sleep(1.0)  # its lease expires: nobody renews it
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        reaped = pool.map(_reap, [pg_storage, pg_storage])
    assert sorted(n for r in reaped for n in r) == [ticket.number]
    study = optuna.load_study(study_name="bowl", storage=pg_storage)
    assert study.trials[ticket.number].state == optuna.trial.TrialState.FAIL
    assert "lease expired" in study.trials[ticket.number].user_attrs["sweeplab.fail_reason"]
    waiting = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == ticket.raw_params
    assert study.user_attrs["sweeplab.retries"] == {str(ticket.number): waiting[0].number}


def test_a_retry_claimed_by_a_driver_that_died_before_writing_its_params_is_retried_with_them(tmp_path):
    """Claiming an enqueued retry commits RUNNING at once; its params and lease follow at the end
    of ask's batch. A driver killed between the two leaves a RUNNING trial with no params: the
    reaper's retry of it must still repeat the lineage's params, not sample new ones."""
    from sweeplab.search.coordinator import StudyCoordinator

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    spec = bowl_spec(trials=5).to_dict()
    first = StudyCoordinator(spec, storage, lease_seconds=0.5).ask()
    time.sleep(1.0)  # its lease expires: nobody renews it
    assert [r.number for r in StudyCoordinator(spec, storage).reap_stale()] == [first.number]
    study = optuna.load_study(study_name="bowl", storage=storage)
    (retry,) = [t for t in study.trials if t.state == optuna.trial.TrialState.WAITING]
    # the dying driver's claim: the state is written, nothing else is
    optuna.storages.RDBStorage(storage).set_trial_state_values(retry._trial_id, optuna.trial.TrialState.RUNNING)
    study = optuna.load_study(study_name="bowl", storage=storage)
    assert study.trials[retry.number].params == {}

    reaper = StudyCoordinator(spec, storage)
    (record,) = reaper.reap_stale()
    assert record.number == retry.number and record.raw_params == first.raw_params
    again = reaper.ask()
    assert again.retry_of == retry.number and again.raw_params == first.raw_params
    assert again.seed == first.seed  # the lineage's seed too


def _kill_backends(storage: str, stop: threading.Event, kills: list[int]) -> None:
    import psycopg

    name = storage.rsplit("/", 1)[1]
    while not stop.is_set():
        time.sleep(1.5)
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
            kills.append(len(rows))


def test_database_connections_dropped_during_ask_and_tell(ray_local, stores, pg_storage):
    spec = bowl_spec(trials=10, workers=2, sampler={"name": "tpe"},
                     objective={"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": 4,
                                "options": {"seconds": 0.6}})
    stop = threading.Event()
    kills: list[int] = []
    killer = threading.Thread(target=_kill_backends, args=(pg_storage, stop, kills), daemon=True)
    killer.start()
    try:
        summary = run(spec, {**stores, "storage": pg_storage})
    finally:
        stop.set()
        killer.join(10)
    assert sum(kills) >= 3, kills  # connections really were dropped, several times
    study = optuna.load_study(study_name="bowl", storage=pg_storage)
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(len(numbers)))  # dense, no duplicates
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)  # no orphan
    retries = study.user_attrs.get("sweeplab.retries", {})
    counted = [t for t in study.trials if str(t.number) not in retries]
    assert len(counted) == 10 and summary.n_trials == 10
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in counted)
    for t in counted:
        assert sorted(t.intermediate_values) == [1, 2, 3, 4]  # every reported value stored
