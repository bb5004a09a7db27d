"""The evidence behind `sampler: auto` / `pruner: auto`: targets from a table, trials and compute to target."""

from __future__ import annotations

import math

import pytest
from sweeplab_curves_kit import OBJECTIVE, sim_spec, synthetic_table

from sweeplab.bench.evidence import quantile, run_cell, spread, table_target, target_share
from sweeplab.search.simulated import simulate_study


def test_the_target_is_the_value_of_the_top_3_percent_of_recorded_trials():
    table = synthetic_table()  # 24 configurations x 2 seeds; best: units 128, lr 0.01, dropout 0
    # quality 0.5 + 0.2 + 0.2 - 0 + 0.01 * seed: 0.91 (seed 1), 0.90 (seed 0); rank ceil(0.03 * 48) = 2
    target = table_target(table, "val_accuracy", "maximize")
    assert target == pytest.approx(0.90)
    assert target_share(table, "val_accuracy", "maximize", target) == pytest.approx(2 / 48)
    # minimizing val_loss (1 - accuracy) names the same trials
    assert table_target(table, "val_loss", "minimize") == pytest.approx(0.10)
    # failed trials count as the worst: a table whose every trial but one fails still has a target
    failing = synthetic_table(curve=lambda p, s: ([1.0] * 4, [0.5] * 4, "COMPLETE" if p["units"] == 16 and
                                                  p["learning_rate"] == 0.1 and p["dropout"] == 0 and s == 0
                                                  else "FAIL"))
    assert table_target(failing, "val_accuracy", "maximize", top=1 / 48) == 0.5
    # rank 2 of 48 is a failed trial: any complete trial is then in the top 3 %
    assert table_target(failing, "val_accuracy", "maximize") == -math.inf
    with pytest.raises(ValueError, match="top must be in"):
        table_target(table, "val_accuracy", "maximize", top=0)


@pytest.mark.parametrize("seed", range(8))
def test_trials_epochs_and_time_to_target_count_every_trial_up_to_the_first_at_the_target(seed):
    table = synthetic_table()
    target = table_target(table, "val_accuracy", "maximize")  # 0.90: 2 of the 48 recorded trials
    spec = sim_spec(trials=24, workers=1, seed=seed)
    outcome = run_cell(spec, table, target)
    # the same study again, read trial by trial (one worker: completion order is number order)
    trials = sorted(simulate_study(spec, table, fail_fast=0).study.trials, key=lambda t: t.number)
    hits = [t.number for t in trials if t.value is not None and t.value >= target]
    best = max(t.value for t in trials if t.value is not None)
    assert outcome.best == pytest.approx(best)
    assert (outcome.pruned, outcome.failed, outcome.total_epochs) == (0, 0, 24 * OBJECTIVE["epochs"])
    if not hits:
        assert (outcome.trials, outcome.epochs, outcome.time_s) == (None, None, None)
        assert best < target
        return
    n = hits[0] + 1
    # every trial ran its 4 epochs; a trial's time is its epochs' recorded seconds and the end's 0.5 s
    seconds = sum(1.0 + t.params["units"] / 64 + 0.1 * i for t in trials[:n] for i in range(4)) + 0.5 * n
    assert (outcome.trials, outcome.epochs) == (n, n * OBJECTIVE["epochs"])
    assert outcome.time_s == pytest.approx(seconds, abs=1e-3)


def test_some_seed_reaches_the_target_and_pruned_trials_count_as_trials():
    table = synthetic_table()
    target = table_target(table, "val_accuracy", "maximize")
    reached = [run_cell(sim_spec(trials=24, workers=1, seed=s), table, target).trials for s in range(8)]
    assert any(r is not None for r in reached)
    pruned = run_cell(sim_spec(trials=24, workers=1, seed=0, pruner={"name": "successive_halving"}), table, target)
    assert pruned.pruned > 0 and pruned.total_epochs < 24 * OBJECTIVE["epochs"]


def test_quantiles_count_a_target_never_reached_as_worse_than_any():
    assert quantile([3, 1, 2], 0.5) == 2
    assert quantile([1, 2, None], 0.5) == 2
    assert quantile([1, None, None], 0.5) == math.inf
    assert quantile([1, 2, 3, None], 0.5) == 2.5 and quantile([1, 2, None, None], 0.5) == math.inf
    assert math.isnan(quantile([], 0.5))
    assert spread([4, 1, 3, 2, 5]) == {"median": 3, "q25": 2, "q75": 4, "min": 1, "max": 5}
