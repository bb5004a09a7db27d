"""Benchmark aggregates on hand-made trial events (no Ray, no stores)."""

from __future__ import annotations

import pytest

from sweeplab.bench.results import CellResult, TrialEvent, build_result, step_band


def cell(config, seed, values, direction="maximize", epochs=None):
    """A cell whose trials finish one per second; None values are pruned trials (2 epochs)."""
    events = []
    for i, v in enumerate(values):
        state = "PRUNED" if v is None else "COMPLETE"
        ep = (epochs or {}).get(i, 2 if v is None else 5)
        events.append(TrialEvent(number=i, state=state, value=v, epochs=ep, start_s=float(i), end_s=float(i + 1)))
    return CellResult(f"b.{config[0]}.{config[1]}.torch.s{seed}", config[0], config[1], "torch", seed, direction,
                      events=events)


def test_curves_and_target_count_every_trial_until_the_first_complete_one_at_the_target():
    c = cell(("tpe", "median"), 0, [0.5, None, 0.7, 0.95, 0.6])
    assert c.curve("trials") == [(1.0, 0.5), (2.0, 0.5), (3.0, 0.7), (4.0, 0.95), (5.0, 0.95)]
    assert c.curve("epochs")[:3] == [(5.0, 0.5), (7.0, 0.5), (12.0, 0.7)]
    assert c.to_target(0.9) == {"trials": 4, "epochs": 17, "time_s": 4.0}
    assert c.to_target(0.99) == {"trials": None, "epochs": None, "time_s": None}
    assert c.total_epochs == 22 and c.wall_time_s == 5.0 and c.best_value == 0.95
    low = cell(("tpe", "none"), 0, [0.5, 0.2, 0.3], direction="minimize")
    assert low.curve("trials") == [(1.0, 0.5), (2.0, 0.2), (3.0, 0.2)] and low.to_target(0.25)["trials"] == 2


def test_a_retried_lost_attempt_costs_epochs_but_does_not_count_as_a_trial():
    c = cell(("tpe", "none"), 0, [0.5, 0.6])
    c.events.insert(1, TrialEvent(number=9, state="FAIL", value=None, epochs=3, start_s=0.5, end_s=1.5,
                                  counted=False))
    assert len(c.counted()) == 2 and c.total_epochs == 13
    assert c.curve("trials") == [(1.0, 0.5), (2.0, 0.6)]


def test_step_band_holds_each_seed_at_its_last_value():
    xs, med, lo, hi = step_band([[(1, 0.1), (3, 0.5)], [(2, 0.2)], [(1, 0.3), (2, 0.4), (4, 0.9)]], [1, 2, 3, 4])
    assert xs == [1, 2, 3, 4]
    assert med == [0.2, 0.2, 0.4, 0.5]
    assert lo == [0.1, 0.1, 0.2, 0.2] and hi == [0.3, 0.4, 0.5, 0.9]
    assert step_band([[(2, 1.0)]], [1, 2]) == ([2], [1.0], [1.0], [1.0])


def test_ranking_by_median_across_seeds_and_the_seed_consistency_verdict():
    cells = []
    for seed in range(5):
        cells.append(cell(("tpe", "median"), seed, [0.80 + 0.01 * seed, 0.90 + 0.01 * seed]))
        cells.append(cell(("random", "none"), seed, [0.70 + 0.01 * seed, 0.75 + 0.01 * seed]))
    result = build_result("b", "acc", "maximize", 2, {"seeds": list(range(5))}, cells, target=0.91)
    assert [c.label for c in result.configs] == ["tpe / median / torch", "random / none / torch"]
    top = result.to_dict()["configs"][0]
    assert top["median_best"] == pytest.approx(0.92) and top["reached_target"] == 4
    assert top["median_trials_to_target"] == 2
    cmp = result.comparison
    assert cmp["wins"] == 5 and cmp["paired_seeds"] == 5 and cmp["first_in_seeds"] == 5
    assert cmp["p_value"] < 0.05 and "holds across seeds" in cmp["verdict"]
    few = build_result("b", "acc", "maximize", 2, {"seeds": [0, 1]}, [c for c in cells if c.seed < 2], target=None)
    assert few.target_source == "derived" and few.target == pytest.approx(0.755)  # worse config's median
    assert "too few seeds" in few.comparison["verdict"] and few.comparison["min_p_value"] == pytest.approx(1 / 3)


def test_minimize_ranks_low_values_first():
    cells = [cell(("a", "none"), 0, [0.3], "minimize"), cell(("b", "none"), 0, [0.1], "minimize")]
    result = build_result("b", "loss", "minimize", 1, {"seeds": [0]}, cells, target=None)
    assert result.configs[0].config[0] == "b" and result.target == pytest.approx(0.3)
