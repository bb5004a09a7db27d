"""Pareto arithmetic for two-objective studies: dominance, non-dominated ranks, 2-D
hypervolume, and the rung rule of the multi-objective successive-halving pruner.

Every function takes ``maximize``: one flag per objective (True where larger is better),
so vectors are compared as the study's directions say. Pure Python, no Optuna: the
pruner's registry entry (:mod:`sweeplab.registry.search`) builds :class:`ParetoHalving`,
the coordinator applies it (:mod:`sweeplab.search.coordinator`), the benchmarks measure
hypervolume with :func:`hypervolume_2d`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ParetoHalving", "dominates", "hypervolume_2d", "nondominated_ranks", "promoted"]

Vector = Sequence[float]


def _oriented(vector: Vector, maximize: Sequence[bool]) -> tuple[float, ...]:
    """``vector`` with every objective turned into one to minimize."""
    return tuple(-float(v) if up else float(v) for v, up in zip(vector, maximize, strict=True))


def dominates(a: Vector, b: Vector, maximize: Sequence[bool]) -> bool:
    """True when ``a`` is at least as good as ``b`` in every objective and better in one."""
    oa, ob = _oriented(a, maximize), _oriented(b, maximize)
    return all(x <= y for x, y in zip(oa, ob, strict=True)) and any(x < y for x, y in zip(oa, ob, strict=True))


def nondominated_ranks(points: Sequence[Vector], maximize: Sequence[bool]) -> list[int]:
    """The non-dominated sorting rank of each point: 0 for the Pareto front of ``points``,
    1 for the front of what is left once it is removed, and so on. Equal points share a rank."""
    ranks = [-1] * len(points)
    left = set(range(len(points)))
    rank = 0
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i], maximize) for j in left if j != i)}
        for i in front:
            ranks[i] = rank
        left -= front
        rank += 1
    return ranks


def promoted(own: Vector, others: Sequence[Vector], maximize: Sequence[bool], reduction_factor: int) -> bool:
    """Whether ``own`` goes on past a rung where ``others`` were recorded before it.

    The rung's ``n`` vectors (``own`` included) are ranked by :func:`nondominated_ranks`;
    ``own`` is promoted when fewer than ``max(1, n // reduction_factor)`` of them have a
    better (lower) rank than its own. So a vector no other dominates is always promoted,
    whole fronts go on together, and a pruned vector is always dominated by one of ``others``.
    """
    points = [*others, own]
    ranks = nondominated_ranks(points, maximize)
    top_k = max(1, len(points) // reduction_factor)
    better = sum(1 for r in ranks[:-1] if r < ranks[-1])
    return better < top_k


@dataclass(frozen=True)
class ParetoHalving:
    """Asynchronous successive halving on the non-dominated rank of objective vectors.

    Rung ``k`` is reached at step (epoch) ``min_resource * reduction_factor **
    (min_early_stopping_rate + k)``. When a trial reaches a rung its vector of the study's
    metrics at that step is recorded there and compared with the vectors the rung recorded
    for the other trials it may see (:func:`promoted`); a trial not promoted is pruned.
    As Optuna's ``SuccessiveHalvingPruner``: a rung with at most ``bootstrap_count``
    vectors (this one included) prunes, and a vector with a NaN prunes. The defaults of
    the options live in the pruner's registry entry (``mo_successive_halving``).
    """

    min_resource: int
    reduction_factor: int
    min_early_stopping_rate: int
    bootstrap_count: int

    def rung_step(self, rung: int) -> int:
        """The step at which rung ``rung`` (0-based) is reached."""
        return int(self.min_resource * self.reduction_factor ** (self.min_early_stopping_rate + rung))

    def keep(self, own: Vector, others: Sequence[Vector], maximize: Sequence[bool]) -> bool:
        """True when a trial whose vector at a rung is ``own`` goes on past it (see the class docstring)."""
        if any(math.isnan(float(v)) for v in own):
            return False
        if len(others) + 1 <= self.bootstrap_count:
            return False
        clean = [o for o in others if not any(math.isnan(float(v)) for v in o)]
        return promoted(own, clean, maximize, self.reduction_factor)


def hypervolume_2d(points: Sequence[Vector], maximize: Sequence[bool], reference: Vector) -> float:
    """The area dominated by ``points`` and bounded by ``reference`` (two objectives).

    Points no better than ``reference`` in both objectives add nothing. Used to score a
    multi-objective study's Pareto front; larger is better.
    """
    ref = _oriented(reference, maximize)
    inside = sorted({p for p in (_oriented(v, maximize) for v in points) if p[0] < ref[0] and p[1] < ref[1]})
    area, best_y = 0.0, ref[1]
    for x, y in inside:  # by the first objective, best first
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area
