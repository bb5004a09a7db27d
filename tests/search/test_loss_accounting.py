"""Whose fault a lost trial is decides what it spends: driver and node losses are free (up to
a large bound), a trial whose own worker died spends one of its ``max_retries``."""

from __future__ import annotations

import time
from typing import Any

import pytest
import ray

from sweeplab.core.keys import ATTR_INTERRUPTIONS, ATTR_OWN_FAILURES, STUDY_ATTR_RETRIES
from sweeplab.core.records import COMPLETE, INTERRUPTED, LOST, TrialOutcome
from sweeplab.search.coordinator import MAX_INTERRUPTIONS, StudyCoordinator
from sweeplab.search.executor import lost_outcome


def _spec(max_retries: int = 2) -> dict[str, Any]:
    return {
        "study": "losses", "metric": "score", "trials": 3, "workers": 1, "seed": 1, "max_retries": max_retries,
        "sampler": "random",
        "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 1},
        "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
    }


def test_a_trial_whose_driver_keeps_dying_is_retried_up_to_the_separate_bound(tmp_path):
    url = f"sqlite:///{tmp_path}/s.db"
    numbers = []
    for _ in range(MAX_INTERRUPTIONS + 1):
        driver = StudyCoordinator(_spec(), url, lease_seconds=0.05)  # a driver that dies: nobody renews
        driver.reap_stale()
        numbers.append(driver.ask().number)
        time.sleep(0.1)
    reaped = StudyCoordinator(_spec(), url).reap_stale()
    assert [r.number for r in reaped] == [numbers[-1]]
    assert reaped[0].retried_by is None  # the bound is reached: no further attempt
    assert "may be what brings them down" in reaped[0].reason
    study = StudyCoordinator(_spec(), url).study
    lineage = [t for t in study.trials if t.user_attrs.get("sweeplab.lineage_root") == numbers[0]]
    assert [t.number for t in lineage] == numbers  # every attempt re-ran trial 0's params ...
    assert len({t.params["x"] for t in lineage}) == 1
    assert lineage[-1].user_attrs[ATTR_INTERRUPTIONS] == MAX_INTERRUPTIONS
    assert lineage[-1].user_attrs[ATTR_OWN_FAILURES] == 0  # ... and none spent max_retries
    assert str(numbers[-1]) not in study.user_attrs[STUDY_ATTR_RETRIES]


def test_own_losses_spend_max_retries_and_interruptions_do_not(tmp_path):
    coordinator = StudyCoordinator(_spec(max_retries=1), f"sqlite:///{tmp_path}/s.db")
    first = coordinator.ask()
    interrupted = coordinator.tell(TrialOutcome(first.number, INTERRUPTED, {}, reason="lost: Ctrl-C"))
    assert interrupted.retried_by is not None
    retry = coordinator.ask()
    assert retry.number == interrupted.retried_by and retry.raw_params == first.raw_params
    died = coordinator.tell(TrialOutcome(retry.number, LOST, {}, reason="lost: its worker died"))
    assert died.retried_by is not None  # max_retries=1: the first own loss is retried
    last = coordinator.ask()
    again = coordinator.tell(TrialOutcome(last.number, LOST, {}, reason="lost: its worker died"))
    assert again.retried_by is None and "its worker died 2 times (max_retries=1)" in again.reason
    counts = coordinator.counts()
    assert counts["retried"] == 2 and counts["FAIL"] == 1 and counts["finished"] == 1


def test_a_completed_retry_counts_once_toward_trials(tmp_path):
    coordinator = StudyCoordinator(_spec(), f"sqlite:///{tmp_path}/s.db")
    ticket = coordinator.ask()
    record = coordinator.tell(TrialOutcome(ticket.number, INTERRUPTED, {}, reason="lost"))
    retry = coordinator.ask()
    assert retry.number == record.retried_by
    coordinator.tell(TrialOutcome(retry.number, COMPLETE, {"score": 0.5}))
    assert coordinator.counts()["finished"] == 1


@pytest.mark.parametrize(("error", "state"), [
    (ray.exceptions.NodeDiedError("Task failed because the node it was running on is dead"), INTERRUPTED),
    (ray.exceptions.LocalRayletDiedError(), INTERRUPTED),
    (ray.exceptions.WorkerCrashedError(), LOST),
])
def test_a_lost_node_is_an_interruption_and_a_dead_worker_the_trials_own_loss(error, state):
    outcome = lost_outcome(7, error)
    assert outcome.number == 7 and outcome.state == state
    assert outcome.reason.startswith("lost: ") and type(error).__name__ in outcome.reason
