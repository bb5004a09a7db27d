"""Sharing a pool of workers between studies by weight: the policy, and two real studies
(in-process executor: the real loop, coordinator, Optuna and MLflow, without Ray) sharing it."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
from sweeplab_testkit import bowl_spec

from sweeplab.service.fairshare import FairShare
from sweeplab.study import RunOptions, run_study


def test_a_freed_slot_goes_to_the_study_holding_less_per_weight():
    pool = FairShare(2)
    long = pool.join("long", 1.0, cap=2)
    assert long.try_acquire() and long.try_acquire()
    short = pool.join("short", 1.0, cap=2)
    assert not short.try_acquire()  # the pool is full: short now waits
    long.release()
    assert not long.try_acquire()  # the freed slot is kept for short, which holds less
    assert short.try_acquire()
    assert pool.held() == {"long": 1, "short": 1}
    short.leave()
    assert long.try_acquire() and pool.held() == {"long": 2}


def test_slots_follow_the_weights():
    pool = FairShare(4)
    heavy, light = pool.join("heavy", 3.0, cap=4), pool.join("light", 1.0, cap=4)
    for _ in range(6):  # both keep asking, in turn
        heavy.try_acquire()
        light.try_acquire()
    assert pool.held() == {"heavy": 3, "light": 1}


def test_a_slot_that_no_needier_study_can_use_is_not_left_idle():
    pool = FairShare(4)
    single, other = pool.join("single", 1.0, cap=1), pool.join("other", 1.0, cap=4)
    assert single.try_acquire()  # at its own `workers`: it asks for no more
    assert [other.try_acquire() for _ in range(4)] == [True, True, True, False]


@pytest.mark.parametrize("weight", [0, -1.0])
def test_a_weight_must_be_positive(weight):
    with pytest.raises(ValueError, match="weight must be > 0"):
        FairShare(2).join("s", weight, cap=1)


def _run_long_then_short(pool: FairShare, specs: dict, stores: dict, executor: str) -> None:
    """Run study "long" on ``pool``, then "short" once long finished a trial; wait for both."""
    first_long_done = threading.Event()

    def run(name):
        options = RunOptions(storage_url=stores["storage"], tracking_uri=stores["tracking"], progress=False,
                             executor=executor, gate=pool.join(name, 1.0, cap=2),
                             on_record=lambda _r: first_long_done.set() if name == "long" else None)
        run_study(specs[name], options)

    threads = {"long": threading.Thread(target=run, args=("long",))}
    threads["long"].start()
    assert first_long_done.wait(120)
    threads["short"] = threading.Thread(target=run, args=("short",))
    threads["short"].start()
    for t in threads.values():
        t.join(300)


def test_two_studies_share_two_slots_and_the_short_one_is_not_starved(stores):
    pool = FairShare(2)
    sleepy = {"framework": "python", "callable": "sweeplab_test_objectives:sleepy", "epochs": 4,
              "options": {"seconds": 0.4}}
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    specs = {"long": bowl_spec(study="long", trials=12, workers=2, objective=sleepy, space=space),
             "short": bowl_spec(study="short", trials=3, workers=2, objective=sleepy, space=space)}
    _run_long_then_short(pool, specs, stores, "in-process")

    trials = {name: optuna.load_study(study_name=name, storage=stores["storage"]).trials for name in specs}
    assert [len(trials[n]) for n in ("long", "short")] == [12, 3]
    spans = [(t.datetime_start, t.datetime_complete) for ts in trials.values() for t in ts]
    for start, _ in spans:  # never more trials at once than the pool's two slots
        assert sum(1 for s, e in spans if s <= start < e) <= 2
    short_end = max(t.datetime_complete for t in trials["short"])
    assert max(t.datetime_complete for t in trials["long"]) > short_end
    short_start = min(t.datetime_start for t in trials["short"])
    assert any(short_start < t.datetime_complete < short_end for t in trials["long"])  # both progressed



def _spans(folder: Path) -> list[tuple[float, float]]:
    return [tuple(map(float, f.read_text().split())) for f in folder.glob("span-*")]  # type: ignore[misc]


def test_studies_sharing_a_pool_ask_ahead_and_never_run_more_trials_than_its_slots(stores, tmp_path):
    """Trials in worker processes, two studies on a pool of 2 slots: each asks its next trial
    while its workers run (so a worker whose trial ends goes on before the tell), yet no
    more than 2 trials run at once, and the study submitted later gets slots as they free."""
    pool = FairShare(2)
    space = {"x": {"type": "float", "low": 0.0, "high": 1.0}}
    folders = {name: tmp_path / name for name in ("long", "short")}
    specs = {name: bowl_spec(study=name, trials=trials, workers=2, space=space, objective={
        "framework": "python", "callable": "sweeplab_test_objectives:spanned", "epochs": 2,
        "options": {"seconds": 0.5, "marker_dir": str(folders[name])}})
        for name, trials in (("long", 16), ("short", 4))}
    for folder in folders.values():
        folder.mkdir()
    _run_long_then_short(pool, specs, stores, "processes")

    trials = {name: optuna.load_study(study_name=name, storage=stores["storage"]).trials for name in specs}
    assert [len(trials[n]) for n in ("long", "short")] == [16, 4]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for ts in trials.values() for t in ts)
    # asked ahead: a trial was asked while two others of the study were asked and not told
    asked_ahead = max(sum(1 for o in trials["long"] if o is not t and o.datetime_start <= t.datetime_start
                          < o.datetime_complete) for t in trials["long"])
    assert asked_ahead == 2
    spans = _spans(folders["long"]) + _spans(folders["short"])
    assert len(spans) == 20
    for start, _ in spans:  # inside the objective: never more than the pool's 2 slots at once
        assert sum(1 for s, e in spans if s <= start < e) <= 2
    short_start, short_end = min(s for s, _ in _spans(folders["short"])), max(e for _, e in _spans(folders["short"]))
    assert max(e for _, e in _spans(folders["long"])) > short_end  # the short one was not starved
    assert any(short_start < e < short_end for _, e in _spans(folders["long"]))  # and both progressed
