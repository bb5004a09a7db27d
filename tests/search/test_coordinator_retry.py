"""A tell retried after a dropped database connection: when its first attempt already
committed the trial's state, the retry changes nothing and returns what is stored."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy
from sweeplab_testkit import bowl_spec

from sweeplab.core.keys import ATTR_NODE
from sweeplab.core.records import COMPLETE, FAILED, LOST, TrialOutcome
from sweeplab.search.coordinator import StudyCoordinator
from sweeplab.search.storage import StorageOptions


@pytest.fixture(params=[True, False], ids=["held-storage", "optunas-storage"])
def storage_options(request):
    """Both storages a coordinator may keep its study in (Optuna's own on an untested Optuna)."""
    return StorageOptions(held=request.param)


def _coordinator_dropping_after_the_state_commit(tmp_path, monkeypatch, storage_options):
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    coord = StudyCoordinator(bowl_spec().to_dict(), url, 60.0, storage_options=storage_options)
    finished: list[int] = []
    tell = coord._tell

    def tell_then_drop(trial, **kwargs):
        tell(trial, **kwargs)  # the state is committed ...
        finished.append(trial.number)
        if len(finished) == 1:  # ... and then the connection drops, once
            raise sqlalchemy.exc.OperationalError("SELECT", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(coord, "_tell", tell_then_drop)
    return coord, url, finished


def test_retried_tell_of_a_committed_trial_changes_nothing(tmp_path, monkeypatch, storage_options):
    coord, url, finished = _coordinator_dropping_after_the_state_commit(tmp_path, monkeypatch, storage_options)
    ticket = coord.ask()
    record = coord.tell(TrialOutcome(ticket.number, COMPLETE, {"score": 0.5}, node="node-1"), "run-1")
    assert finished == [ticket.number]  # told once; the retry found it finished
    assert record.state == COMPLETE and record.values == [0.5]
    stored = optuna.load_study(study_name="bowl", storage=url).trials[ticket.number]
    assert stored.state == optuna.trial.TrialState.COMPLETE and stored.value == 0.5
    assert stored.user_attrs[ATTR_NODE] == "node-1"


def test_retried_tell_of_a_lost_trial_enqueues_its_retry_once(tmp_path, monkeypatch, storage_options):
    coord, url, finished = _coordinator_dropping_after_the_state_commit(tmp_path, monkeypatch, storage_options)
    ticket = coord.ask()
    record = coord.tell(TrialOutcome(ticket.number, LOST, {}, reason="lost: its worker died"))
    assert finished == [ticket.number]
    assert record.state == FAILED and record.retried_by is not None
    trials = optuna.load_study(study_name="bowl", storage=url).trials
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert [t.number for t in waiting] == [record.retried_by]
    assert trials[ticket.number].state == optuna.trial.TrialState.FAIL


def test_covered_grid_is_not_exhausted_while_a_retry_waits(tmp_path, storage_options):
    spec = bowl_spec(trials=1, sampler={"name": "grid"}, max_retries=1,
                     space={"mode": {"type": "categorical", "choices": ["only"]}})
    coord = StudyCoordinator(spec.to_dict(), f"sqlite:///{tmp_path / 'optuna.db'}", 60.0,
                             storage_options=storage_options)
    first = coord.ask()  # the whole grid
    lost = coord.tell(TrialOutcome(first.number, LOST, {}, reason="lost: its worker died"))
    assert lost.retried_by is not None
    assert coord.is_exhausted() is False  # the grid is covered, but its lost point waits to run again
    retry = coord.ask()
    assert retry.number == lost.retried_by and retry.params["mode"] == "only"
    coord.tell(TrialOutcome(retry.number, COMPLETE, {"score": 1.0}))
    assert coord.is_exhausted() is True
