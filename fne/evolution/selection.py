"""Survival of the (mu + lambda) loop: Pareto fronts, crowding-distance cut, duplicates, rank-combined score.

All objectives are minimised. Non-finite scores (a failed evaluation gives +inf; NaN is treated the
same) are replaced, per objective, by a value worse than every finite one before pymoo sees them, so a
failed candidate is dominated by any candidate that is finite where it is not, and crowding distances
stay finite. The front sorting is pymoo's `NonDominatedSorting`; a front that overflows the survivors is
cut by pymoo's `calc_crowding_distance`, largest first, exactly as pymoo's `RankAndCrowding` survival does
(ties broken by input order, not at random, so survival is deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from fne.errors import ConfigError
from fne.genotopheno.spaces import SearchSpace
from fne.scoring.aggregation import linear_rank_sum, score_matrix


@dataclass(frozen=True)
class Survival:
    """Outcome of a survival step over n candidates: who survives and every candidate's front and crowding."""

    selected: tuple[int, ...]  # indices into the candidates, best first
    front: np.ndarray  # (n,) 0-based front number
    crowding: np.ndarray  # (n,) crowding distance inside its front (inf at a front's extremes)


def objective_matrix(scores: pd.DataFrame | np.ndarray, objectives: Sequence[str] | None = None) -> np.ndarray:
    """(n, m) float matrix of minimised objectives with non-finite entries made worse than all finite ones."""
    F = score_matrix(scores, objectives)  # every non-finite entry is +inf
    for column in range(F.shape[1]):
        values = F[:, column]
        finite = np.isfinite(values)
        if finite.all():
            continue
        if finite.any():
            worst = values[finite].max()
            span = worst - values[finite].min()
            replacement = worst + max(abs(worst), span, 1.0)
        else:
            replacement = 1.0
        values[~finite] = replacement
    return F


def pareto_fronts(F: np.ndarray) -> list[np.ndarray]:
    """Indices of each non-dominated front, best first (pymoo NonDominatedSorting on sanitised F)."""
    F = objective_matrix(F)
    if len(F) == 0:
        return []
    return [np.asarray(front, dtype=int) for front in NonDominatedSorting().do(F)]


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """pymoo's crowding distance of the points of one front (inf for the extremes; all inf for <= 2 points)."""
    F = objective_matrix(F)
    if len(F) <= 2:
        return np.full(len(F), np.inf)
    return calc_crowding_distance(F)


def survive(F: np.ndarray, n_survive: int) -> Survival:
    """Rank and crowding survival: whole fronts while they fit, then the most crowding-distant of the next."""
    F = objective_matrix(F)
    n = len(F)
    if n_survive < 0:
        raise ConfigError(f"cannot keep {n_survive} survivors")
    front_of = np.zeros(n, dtype=int)
    crowding = np.zeros(n, dtype=float)
    selected: list[int] = []
    for number, front in enumerate(pareto_fronts(F)):
        distances = crowding_distance(F[front])
        front_of[front] = number
        crowding[front] = distances
        # Stable sort on -distance: the input order breaks ties.
        order = front[np.argsort(-distances, kind="stable")]
        room = n_survive - len(selected)
        if room > 0:
            selected.extend(int(i) for i in order[:room])
    return Survival(tuple(selected), front_of, crowding)


def binary_tournament(front: np.ndarray, crowding: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Mating selection as in NSGA-II: of two random individuals the lower front wins, then larger crowding."""
    size = len(front)
    if size == 0:
        raise ConfigError("cannot select parents from an empty population")
    a = rng.integers(size, size=n)
    b = rng.integers(size, size=n)
    a_better = (front[a] < front[b]) | ((front[a] == front[b]) & (crowding[a] >= crowding[b]))
    return np.where(a_better, a, b)


def unique_indices(genotypes: Sequence[str], space: SearchSpace | None = None) -> list[int]:
    """Indices of the first occurrence of every distinct genotype (hash of its canonical string)."""
    seen: set[str] = set()
    keep = []
    for index, genotype in enumerate(genotypes):
        key = space.canonical(genotype) if space is not None else genotype
        if key not in seen:
            seen.add(key)
            keep.append(index)
    return keep


def rank_combined(scores: pd.DataFrame | np.ndarray, objectives: Sequence[str] | None) -> np.ndarray:
    """TE-NAS's rank combination: sum over objectives of each candidate's rank (1 = best, ties averaged)."""
    return linear_rank_sum(scores, objectives)


def best_by_rank(scores: pd.DataFrame, objectives: Sequence[str]) -> int:
    """Row position of the candidate with the smallest rank-combined score (first one on ties)."""
    if len(scores) == 0:
        raise ConfigError("cannot pick the best of an empty population")
    return int(np.argmin(rank_combined(scores, objectives)))
