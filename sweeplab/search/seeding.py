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

Building a sampler per trial costs what the sampler caches: TPE recomputes its
intersection search space over all trials at every ask (about 1 ms per ask at 200
trials, growing with the study). So TPE and random samplers, whose only state besides
those caches (which are derived from the storage, never from the instance's past) is
their random generator, are kept for the whole study and re-seeded before each trial
(:func:`reseed_in_place`); the other samplers are rebuilt. Both give the same draws.
"""

from __future__ import annotations

import functools
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


@functools.cache
def _reseed_allowed() -> bool:
    from sweeplab.core.compat import sampler_reseed_usable

    return sampler_reseed_usable()  # read once per process: it asks importlib.metadata


def reseed_in_place(sampler: Any, seed: int) -> bool:
    """Seed ``sampler``'s random generators with ``seed`` as its constructor would, when it is an
    Optuna TPE or random sampler and the installed Optuna is one this was tested with
    (:func:`sweeplab.core.compat.sampler_reseed_usable`); return False (nothing changed) otherwise.

    Afterwards the sampler draws exactly what ``type(sampler)(seed=seed, <same options>)`` would
    on the same study: checked by ``tests/search/test_seeding.py``.
    """
    import optuna

    if type(sampler) is optuna.samplers.RandomSampler:
        generators = [sampler._rng]
    elif type(sampler) is optuna.samplers.TPESampler:
        generators = [sampler._rng, sampler._random_sampler._rng]
    else:
        return False
    if not _reseed_allowed():
        return False
    for generator in generators:
        generator.rng.seed(seed)
    return True


def trial_seeded_sampler(build: Callable[[int], optuna.samplers.BaseSampler], study_seed: int) -> Any:
    """A sampler that, before each trial, draws as ``build(sampler_seed(study_seed, number))`` would.

    ``build`` must return a fresh sampler for the given seed. The sampler is re-seeded in place
    where :func:`reseed_in_place` can, and rebuilt otherwise.
    """
    import optuna

    class TrialSeededSampler(optuna.samplers.BaseSampler):
        """Delegates to the sampler built for the trial being asked (see the module docstring)."""

        def __init__(self) -> None:
            self.inner = build(sampler_seed(study_seed, 0))

        def __str__(self) -> str:
            return f"TrialSeeded({self.inner})"

        def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
            seed = sampler_seed(study_seed, trial.number)
            if not reseed_in_place(self.inner, seed):
                self.inner = build(seed)
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
