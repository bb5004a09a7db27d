"""A resumed study continues its search: the sampler's randomness comes from the study's seed
and each trial's number, never from a sampler object rebuilt with the same seed on every run."""

from __future__ import annotations

from typing import Any

import pytest

from sweeplab.core.records import COMPLETE, TrialOutcome
from sweeplab.search.coordinator import StudyCoordinator
from sweeplab.search.seeding import sampler_seed

SAMPLERS: dict[str, Any] = {
    "random": "random",
    # past its random start-up: 8 of the 12 trials are chosen by the model
    "tpe": {"name": "tpe", "n_startup_trials": 4},
    "qmc": "qmc",
    "cmaes": "cmaes",
}


def _spec(sampler: Any, seed: int = 3) -> dict[str, Any]:
    return {
        "study": "chunks", "metric": "score", "direction": "minimize", "trials": 12, "workers": 1, "seed": seed,
        "sampler": sampler,
        "objective": {"framework": "python", "callable": "sweeplab_test_objectives:bowl", "epochs": 1},
        "space": {"x": {"type": "float", "low": -2.0, "high": 2.0}, "y": {"type": "float", "low": -2.0, "high": 2.0}},
    }


def _run_in_chunks(sampler: Any, chunks: list[int], url: str, seed: int = 3) -> list[tuple[float, float]]:
    """Each chunk is one `sweeplab run`: a new coordinator (and sampler) on the same storage."""
    asked = []
    for size in chunks:
        coordinator = StudyCoordinator(_spec(sampler, seed), url)
        for _ in range(size):
            ticket = coordinator.ask()
            x, y = ticket.raw_params["x"], ticket.raw_params["y"]
            coordinator.tell(TrialOutcome(ticket.number, COMPLETE, {"score": (x - 0.3) ** 2 + (y + 0.5) ** 2}))
            asked.append((x, y))
    return asked


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_one_run_of_12_and_four_runs_of_3_ask_the_same_12_trials(name, tmp_path):
    whole = _run_in_chunks(SAMPLERS[name], [12], f"sqlite:///{tmp_path}/whole.db")
    chunked = _run_in_chunks(SAMPLERS[name], [3, 3, 3, 3], f"sqlite:///{tmp_path}/chunked.db")
    assert chunked == whole
    assert len(set(chunked)) == 12, f"{name} repeated a trial across runs: {chunked}"


def test_another_seed_asks_other_trials(tmp_path):
    one = _run_in_chunks("random", [4], f"sqlite:///{tmp_path}/a.db", seed=3)
    other = _run_in_chunks("random", [4], f"sqlite:///{tmp_path}/b.db", seed=4)
    assert not set(one) & set(other)


def test_sampler_seeds_differ_by_trial_and_by_study_seed():
    seeds = {sampler_seed(s, n) for s in range(5) for n in range(200)}
    assert len(seeds) == 1000
    assert sampler_seed(7, 3) == sampler_seed(7, 3)


def test_a_grid_run_in_chunks_visits_every_point_once(tmp_path):
    url = f"sqlite:///{tmp_path}/grid.db"
    spec = {**_spec("grid"), "space": {"x": {"type": "categorical", "choices": [0.0, 0.5, 1.0]},
                                       "y": {"type": "categorical", "choices": [-1.0, 1.0]}}}
    seen = []
    for _ in range(3):
        coordinator = StudyCoordinator(spec, url)
        for _ in range(2):
            ticket = coordinator.ask()
            coordinator.tell(TrialOutcome(ticket.number, COMPLETE, {"score": 1.0}))
            seen.append((ticket.raw_params["x"], ticket.raw_params["y"]))
    assert sorted(seen) == sorted((x, y) for x in (0.0, 0.5, 1.0) for y in (-1.0, 1.0))
