"""A sampler re-seeded in place before each trial draws exactly what a fresh one would.

The coordinator keeps TPE and random samplers for the whole study and re-seeds them per
trial (:func:`sweeplab.search.seeding.reseed_in_place`, which reaches into Optuna's private
RNG attributes); these tests hold it to the contract that makes that safe.
"""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from sweeplab.search import seeding

DISTRIBUTIONS = {
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "units": IntDistribution(16, 256),
    "activation": CategoricalDistribution(["relu", "tanh", "elu"]),
    "dropout": FloatDistribution(0.0, 0.5),
}

BUILDERS = {
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    # as the registry builds TPE for a parallel study
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                                   n_startup_trials=5),
}


class _RebuiltPerTrial(optuna.samplers.BaseSampler):
    """The reference: a new sampler for every trial, as a fresh process would build it."""

    def __init__(self, build, study_seed):
        self.build, self.study_seed, self.inner = build, study_seed, build(0)

    def before_trial(self, study, trial):
        self.inner = self.build(seeding.sampler_seed(self.study_seed, trial.number))
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, name, distribution):
        return self.inner.sample_independent(study, trial, name, distribution)

    def after_trial(self, study, trial, state, values):
        self.inner.after_trial(study, trial, state, values)


def _asked(sampler, n_trials=25, in_flight=2):
    """Params of ``n_trials`` asked with ``in_flight`` trials running at once (so TPE's constant
    liar sees RUNNING trials), told a value that depends on them."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    running, asked = [], []
    for _ in range(n_trials):
        trial = study.ask(DISTRIBUTIONS)
        asked.append(trial.params)
        running.append(trial)
        if len(running) == in_flight:
            done = running.pop(0)
            study.tell(done, done.params["units"] * done.params["lr"] - done.params["dropout"])
    return asked


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_reseeded_sampler_asks_what_a_sampler_built_per_trial_asks(name):
    build = BUILDERS[name]
    kept = seeding.trial_seeded_sampler(build, study_seed=7)
    first = kept.inner
    assert _asked(kept) == _asked(_RebuiltPerTrial(build, study_seed=7))
    assert kept.inner is first  # kept for the whole study, not rebuilt


def test_other_samplers_are_rebuilt_per_trial():
    build = lambda seed: optuna.samplers.QMCSampler(seed=seed)  # noqa: E731
    sampler = seeding.trial_seeded_sampler(build, study_seed=3)
    first = sampler.inner
    assert seeding.reseed_in_place(first, 1) is False
    _asked(sampler, n_trials=3, in_flight=1)
    assert sampler.inner is not first


def test_reseeding_changes_the_draws_by_seed():
    sampler = BUILDERS["random"](0)
    seeding.reseed_in_place(sampler, 11)
    a = sampler._rng.rng.random_sample()
    seeding.reseed_in_place(sampler, 11)
    assert sampler._rng.rng.random_sample() == a
    seeding.reseed_in_place(sampler, 12)
    assert sampler._rng.rng.random_sample() != a
