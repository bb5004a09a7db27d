"""After a crash, the MLflow repair links every finished trial's run back into the study."""

from __future__ import annotations

from sweeplab.core.records import TrialDigest
from sweeplab.tracking.mlflow_tracker import StudyTracker


def _digest(number: int, run_id: str | None) -> TrialDigest:
    return TrialDigest(number=number, state="COMPLETE", raw_params={"x": 0.5}, intermediate={1: 0.4, 2: 0.5},
                       metrics={"score": 0.5}, reason=None, pruned_epoch=None, node="", retried_by=None,
                       retry_of=None, run_id=run_id, values=[0.5])


def test_reconcile_links_the_runs_it_creates_and_the_runs_whose_link_was_lost(stores):
    tracker = StudyTracker(stores["tracking"], "repair", "repair")
    tracker.open({"study": "repair"})
    links: list[tuple[int, str]] = []
    tracker.on_run_created = lambda number, run_id: links.append((number, run_id))
    # trial 1's run was created and finished, but the driver died before its link was stored
    tracker.trial_started(1, {"x": 0.5}, {})
    assert tracker.writer.wait_idle(timeout=30)
    existing = tracker.run_id(1, timeout=10)
    tracker.client.set_terminated(existing, "FINISHED")
    links.clear()

    repaired = tracker.reconcile([_digest(0, None), _digest(1, None), _digest(2, "already-linked")], "score")
    assert repaired["created"] == 2  # trial 0 and trial 2 had no run
    by_trial = {n: r for n, r in links}
    assert by_trial[1] == existing
    assert set(by_trial) == {0, 1, 2}  # trial 2's stored link named a run that does not exist
    runs = tracker.child_runs()
    assert runs[0][0].info.run_id == by_trial[0] and runs[0][0].data.tags["sweeplab.repaired"] == "true"

    links.clear()
    again = tracker.reconcile([_digest(0, by_trial[0]), _digest(1, existing), _digest(2, by_trial[2])], "score")
    assert again == {"closed": 0, "created": 0, "deleted": 0} and links == []  # nothing to relink
    tracker.close(None)
