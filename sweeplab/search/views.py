"""A study seen through a fixed set of trial numbers: what a deterministic study's pruner reads.

In a ``deterministic: true`` study (see :mod:`sweeplab.search.loop`) trial ``n`` is asked
once the trials before it, up to ``n - workers``, have been told, in number order. The
trials finished at that moment are therefore a function of the trial numbers alone, and
so is everything stored about them (a finished trial never changes). A pruner that
decides each report of trial ``n`` against :func:`study_view` of those trials (plus
``n`` itself) decides the same way whatever order the other trials run and finish in.

Optuna's pruners read the study through ``study.get_trials`` (median, percentile,
successive halving, hyperband, whose bracket studies are built on the view's storage),
``study.best_trial`` (wilcoxon) and the trial they are given; :class:`VisibleTrials`
filters the first two and passes every other call, writes included (successive halving
records each rung on the trial it decides), to the study's storage.
"""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial, TrialState

__all__ = ["VisibleTrials", "study_view"]


class VisibleTrials:
    """An Optuna storage that shows only the trials whose numbers are in ``numbers``."""

    def __init__(self, storage: Any, numbers: frozenset[int]) -> None:
        self._inner = storage
        self.numbers = numbers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        return [t for t in trials if t.number in self.numbers]

    def get_n_trials(self, study_id: int, state: Any = None) -> int:
        states = None if state is None else (state if isinstance(state, tuple) else (state,))
        return len(self.get_all_trials(study_id, deepcopy=False, states=states))

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        """The best COMPLETE trial among the visible ones (single-objective); ValueError when none is."""
        from optuna.study import StudyDirection
        from optuna.trial import TrialState

        complete = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            raise ValueError("No trials are completed yet.")
        direction = self._inner.get_study_directions(study_id)[0]
        pick = max if direction == StudyDirection.MAXIMIZE else min
        return pick(complete, key=lambda t: float(t.values[0]))


def study_view(study: optuna.Study, storage: Any, numbers: frozenset[int]) -> optuna.Study:
    """``study`` (kept in ``storage``) with only the trials numbered in ``numbers`` visible,
    with the same sampler and pruner."""
    import optuna

    # Not a BaseStorage subclass: its abstract methods would shadow the delegation to ``storage``.
    # Optuna takes any storage object that is not a URL or an RDBStorage as it is.
    view = cast("optuna.storages.BaseStorage", VisibleTrials(storage, numbers))
    return optuna.Study(study_name=study.study_name, storage=view, sampler=study.sampler, pruner=study.pruner)
