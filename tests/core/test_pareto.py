"""Pareto arithmetic on hand-made vectors: dominance, ranks, the rung rule of
mo_successive_halving, and 2-D hypervolume."""

from __future__ import annotations

import math

import pytest

from sweeplab.core.pareto import ParetoHalving, dominates, hypervolume_2d, nondominated_ranks, promoted

UP = (True, True)  # both maximized
MIXED = (True, False)  # accuracy up, loss down
PLAIN = ParetoHalving(min_resource=1, reduction_factor=2, min_early_stopping_rate=0, bootstrap_count=0)


def test_dominance_follows_each_objectives_direction():
    assert dominates((0.9, 0.1), (0.8, 0.2), MIXED)
    assert not dominates((0.8, 0.2), (0.9, 0.1), MIXED)
    assert not dominates((0.9, 0.3), (0.8, 0.2), MIXED)  # better accuracy, worse loss: a trade-off
    assert not dominates((0.5, 0.5), (0.5, 0.5), UP)  # equal vectors do not dominate each other
    assert dominates((0.5, 0.6), (0.5, 0.5), UP)  # as good in one, better in the other


def test_ranks_peel_the_fronts_off_one_by_one():
    points = [(3, 1), (1, 3), (2, 2), (1, 1), (2, 1), (0, 0), (2, 2)]
    # front 0: (3,1), (1,3), (2,2) twice; front 1: (2,1), which only (3,1) and (2,2) dominate;
    # front 2: (1,1); front 3: (0,0)
    assert nondominated_ranks(points, UP) == [0, 0, 0, 2, 1, 3, 0]
    assert nondominated_ranks([], UP) == []


@pytest.mark.parametrize(("own", "others", "factor", "kept"), [
    ((0.1, 0.1), [], 3, True),  # alone at the rung: nothing dominates it
    ((0.1, 0.1), [(0.9, 0.9)], 3, False),  # 2 at the rung, top 1 kept: the dominated one goes
    ((0.9, 0.1), [(0.1, 0.9), (0.5, 0.5), (0.6, 0.6)], 2, True),  # on the front: always kept
    # 4 at the rung, top 4 // 2 = 2: one vector ranks better, so a rank-1 vector stays
    ((0.4, 0.4), [(0.5, 0.5), (0.1, 0.1), (0.2, 0.2)], 2, True),
    # 4 at the rung, top 2: two rank better (the front holds two), so it goes
    ((0.4, 0.4), [(0.5, 0.5), (0.45, 0.6), (0.1, 0.1)], 2, False),
    # 6 at the rung, top 6 // 3 = 2: the whole front (3 vectors) is kept, then nothing else
    ((0.3, 0.3), [(0.9, 0.1), (0.1, 0.9), (0.5, 0.5), (0.2, 0.2), (0.0, 0.0)], 3, False),
])
def test_a_vector_is_promoted_while_fewer_than_n_over_factor_rank_better(own, others, factor, kept):
    assert promoted(own, others, UP, factor) is kept


def test_what_the_rule_prunes_is_always_dominated():
    """Whatever the rung holds, a vector the rule drops is dominated by one recorded before it."""
    import random

    rng = random.Random(5)
    for _ in range(300):
        others = [(rng.random(), rng.random()) for _ in range(rng.randrange(0, 12))]
        own = (rng.random(), rng.random())
        factor = rng.choice([2, 3, 4])
        if not promoted(own, others, MIXED, factor):
            assert any(dominates(o, own, MIXED) for o in others)


def test_rungs_are_reached_at_min_resource_times_powers_of_the_factor():
    halving = ParetoHalving(min_resource=2, reduction_factor=3, min_early_stopping_rate=1, bootstrap_count=0)
    assert [halving.rung_step(k) for k in range(3)] == [6, 18, 54]
    assert [PLAIN.rung_step(k) for k in range(4)] == [1, 2, 4, 8]


def test_keep_prunes_nan_and_bootstraps_like_optunas_successive_halving():
    halving = ParetoHalving(min_resource=1, reduction_factor=2, min_early_stopping_rate=0, bootstrap_count=2)
    assert not halving.keep((math.nan, 0.5), [(0.1, 0.1)] * 5, UP)
    assert not halving.keep((0.9, 0.9), [(0.1, 0.1)], UP)  # 2 vectors <= bootstrap_count 2
    assert halving.keep((0.9, 0.9), [(0.1, 0.1), (0.2, 0.2)], UP)
    assert PLAIN.keep((0.2, 0.2), [(math.nan, 0.9), (0.1, 0.1)], UP)  # a NaN competitor is ignored


def test_hypervolume_of_a_staircase():
    # maximize both from reference (0, 0): boxes 3x1 + 2x(2-1) + 1x(3-2) = 3 + 2 + 1
    assert hypervolume_2d([(3, 1), (2, 2), (1, 3)], UP, (0, 0)) == pytest.approx(6.0)
    # a dominated point and a point beyond the reference add nothing
    assert hypervolume_2d([(3, 1), (2, 2), (1, 3), (1, 1), (-1, 5)], UP, (0, 0)) == pytest.approx(6.0)
    # accuracy up, loss down, reference (0, 1): (0.8, 0.2) spans 0.8 x 0.8
    assert hypervolume_2d([(0.8, 0.2)], MIXED, (0.0, 1.0)) == pytest.approx(0.64)
    assert hypervolume_2d([], UP, (0, 0)) == 0.0
