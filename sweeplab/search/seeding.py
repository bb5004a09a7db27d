"""Sampling randomness derived from the study's seed and the trial's number.

A study is often run in chunks (``sweeplab run`` again with a larger ``--trials``, or
after a crash). If every run built its sampler with the spec's seed, each run's random
draws would start over, and a resumed study would propose its first trials again. Here
the sampler of each trial is seeded from ``(study seed, trial number)`` instead, so:

- the same spec and seed give the same trials (the derivation is fixed);
- a study run as 1 x 12 trials or as 4 x 3 trials asks the same 12 parameter sets
  (with one trial in flight: what a sampler learns is read from the storage, which is
  the same either way);
- no run repeats the draws of an earlier one.

Two samplers lay out their whole search from the seed when they are built: QMC (the
scrambled sequence, indexed by a counter kept in the storage) and grid (the order of
the grid points; the points already visited are read from the storage). Re-seeding
them per trial would change that layout under the study, so they are built once with
the study's seed (their registry entries say ``seeded_once``); they continue where they
stopped on their own (grid never repeats a point, QMC continues its sequence).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial, TrialState


def sampler_seed(study_seed: int, trial_number: int) -> int:
    """The seed of the sampler that proposes trial ``trial_number`` (a 32-bit value)."""
    digest = hashlib.blake2b(f"sweeplab-sampler:{study_seed}:{trial_number}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def trial_seeded_sampler(build: Callable[[int], optuna.samplers.BaseSampler], study_seed: int) -> Any:
    """A sampler that, before each trial, is rebuilt by ``build(sampler_seed(study_seed, number))``.

    ``build`` must return a fresh sampler for the given seed; its constructor should be
    cheap (Optuna's are: what a sampler learns is read from the study on every trial).
    """
    import optuna

    class TrialSeededSampler(optuna.samplers.BaseSampler):
        """Delegates to the sampler built for the trial being asked (see the module docstring)."""

        def __init__(self) -> None:
            self.inner = build(sampler_seed(study_seed, 0))

        def __str__(self) -> str:
            return f"TrialSeeded({self.inner})"

        def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
            self.inner = build(sampler_seed(study_seed, trial.number))
            self.inner.before_trial(study, trial)

        def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
            return self.inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                            search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
            return self.inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                               param_distribution: BaseDistribution) -> Any:
            return self.inner.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                        values: Sequence[float] | None) -> None:
            self.inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            self.inner.reseed_rng()

    return TrialSeededSampler()
