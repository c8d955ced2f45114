"""Survival: Pareto fronts and crowding against hand-computed answers, +inf handling, duplicates, rank sums."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fne.evolution.selection import (
    best_by_rank,
    binary_tournament,
    crowding_distance,
    objective_matrix,
    pareto_fronts,
    rank_combined,
    survive,
    unique_indices,
)
from fne.genotopheno.spaces import get_space

INF = math.inf

# Three minimised objectives. By hand: A, B, C are mutually non-dominated; F is worst on the first
# objective but best on the others, so nothing dominates it; B dominates D; D dominates E; E dominates
# G (all +inf). Fronts: {A, B, C, F}, {D}, {E}, {G}.
HAND = {
    "A": (1, 4, 3),
    "B": (2, 2, 2),
    "C": (3, 1, 4),
    "D": (2, 3, 3),
    "E": (4, 4, 4),
    "F": (INF, 0, 0),
    "G": (INF, INF, INF),
}
HAND_FRONTS = [{"A", "B", "C", "F"}, {"D"}, {"E"}, {"G"}]


def _names(indices):
    names = list(HAND)
    return {names[i] for i in indices}


def test_non_dominated_sorting_matches_the_hand_computed_fronts():
    F = np.array(list(HAND.values()), dtype=float)
    fronts = pareto_fronts(F)
    assert [_names(front) for front in fronts] == HAND_FRONTS


def test_infinite_and_nan_scores_are_worst_but_finite_for_pymoo():
    F = np.array([[1.0, INF], [2.0, 1.0], [np.nan, np.nan], [INF, INF]])
    clean = objective_matrix(F)
    assert np.isfinite(clean).all()
    assert clean[0, 1] > 1.0 and clean[2, 0] > 2.0  # worse than every finite value of its column
    fronts = pareto_fronts(F)
    assert set(fronts[0]) == {0, 1}  # (1, inf) is not dominated by (2, 1)
    assert set(fronts[-1]) == {2, 3}  # NaN and +inf rows tie as the worst
    assert survive(np.full((3, 2), INF), 2).selected == (0, 1)  # all failed: still a valid answer


def test_crowding_distance_matches_the_hand_computed_values():
    # One front on x + y = 4. Normalised by the range 4, pymoo's distance of an inner point is the mean
    # over objectives of (next - previous) / range.
    F = np.array([[0, 4], [1, 3], [1.5, 2.5], [3, 1], [4, 0]], dtype=float)
    expected = [INF, (1.5 / 4 + 1.5 / 4) / 2, (2 / 4 + 2 / 4) / 2, (2.5 / 4 + 2.5 / 4) / 2, INF]
    assert crowding_distance(F) == pytest.approx(expected)


def test_an_overflowing_front_is_cut_by_crowding_distance():
    F = np.array([[0, 4], [1, 3], [1.5, 2.5], [3, 1], [4, 0], [5, 5]], dtype=float)
    # Keep 4: the whole first front does not fit; (1, 3) is the most crowded and goes, as does (5, 5).
    assert set(survive(F, 4).selected) == {0, 2, 3, 4}
    # Keep 3: the two extremes and then the point with the most room, (3, 1).
    assert set(survive(F, 3).selected) == {0, 3, 4}
    # Keep 6: everything, fronts first.
    result = survive(F, 6)
    assert result.selected[-1] == 5 and list(result.front) == [0, 0, 0, 0, 0, 1]


def test_survival_keeps_whole_fronts_before_cutting():
    F = np.array(list(HAND.values()), dtype=float)
    kept = survive(F, 5)
    assert _names(kept.selected) == {"A", "B", "C", "F", "D"}
    assert list(kept.front) == [0, 0, 0, 1, 2, 0, 3]


def test_duplicates_are_removed_by_canonical_string():
    space = get_space("nb201")
    official = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    genotypes = ["C+CC+kCC", "a+aa+aaa", official, "a+aa+aaa", "n+nn+nnn"]
    assert unique_indices(genotypes, space) == [0, 1, 4]


def test_rank_combined_is_the_sum_of_per_objective_ranks():
    scores = pd.DataFrame({"ntk": [3.0, 1.0, 2.0, INF], "linear_regions": [1.0, 2.0, 2.0, 0.0],
                           "grad_corr": [2.0, 3.0, 1.0, 4.0]})
    # ntk ranks 3,1,2,4; linear_regions 2,3.5,3.5,1 (tie averaged); grad_corr 2,3,1,4
    expected = [7.0, 7.5, 6.5, 9.0]
    assert list(rank_combined(scores, ["ntk", "linear_regions", "grad_corr"])) == expected
    assert best_by_rank(scores, ["ntk", "linear_regions", "grad_corr"]) == 2


def test_binary_tournament_prefers_the_lower_front_then_the_larger_crowding():
    front = np.array([0, 1, 0])
    crowding = np.array([0.5, INF, 2.0])
    rng = np.random.default_rng(0)
    picks = binary_tournament(front, crowding, 3000, rng)
    counts = np.bincount(picks, minlength=3) / 3000
    # Index 1 wins only against itself (1/9); index 2 beats both others; index 0 beats only index 1.
    assert counts[1] == pytest.approx(1 / 9, abs=0.03)
    assert counts[2] == pytest.approx(5 / 9, abs=0.03)
    assert counts[0] == pytest.approx(3 / 9, abs=0.03)
