"""Survival of the (mu + lambda) loop as objects with one job: `select(parents, children, n, rng, generation)`.

- `ParetoSurvival`: pymoo's rank-and-crowding survival over parents + children on the objectives
  (selection.survive: non-dominated fronts, the overflowing front cut by crowding distance).
- `TournamentSurvival`: the children are shuffled into groups, each group plays a tournament (the caller's
  `play`: the search passes fne.training.tournament's brief DARTS supernet training, or fne.training.alone's
  training of each child alone) and the child its judge values most wins, with the heuristic prior and
  tie band of `tournament_winner`. The winners enter the next population first (if there are more winners
  than places, the Pareto-best of them); the remaining places go to the parents by Pareto rank and
  crowding. The children that lost their tournament are discarded: the tournament replaced their heuristic selection.

Both return a `Selection`: positions into the pool `[*parents, *children]`, best first (pymoo
`core/survival.py` shape, on typed individuals instead of a Population array).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fne.evolution.individual import Individual, objective_matrix_of
from fne.evolution.selection import survive

log = logging.getLogger(__name__)



class Tournament(Protocol):
    """What a played tournament reports (fne.training.tournament.TournamentResult has these fields)."""

    alphas: Sequence[float]  # the judge's values: alpha, or minus the mean training loss when trained alone
    weights: Sequence[float]  # softmax(alphas), 0 for a disqualified candidate
    winner: int  # index of the candidate with the largest value
    train_loss: float
    val_loss: float
    seconds: float


# (genotypes, generation, tournament number) -> the played tournament
Play = Callable[[Sequence[str], int, int], Tournament]


@dataclass(frozen=True)
class Selection:
    """Who survives (pool positions, parents first then children, best first) and how they were chosen."""

    selected: tuple[int, ...]
    kind: str  # "initial", "pareto" or "tournament"
    tournaments: tuple[dict[str, Any], ...] = ()  # one record per tournament played
    seconds: float = 0.0  # time spent training tournament supernets


class Survival(Protocol):
    """A survival rule: picks n of parents + children."""

    def select(self, parents: Sequence[Individual], children: Sequence[Individual], n: int,
               rng: np.random.Generator, generation: int) -> Selection:
        """Positions into [*parents, *children] of the n survivors, best first."""
        ...


class TournamentListener(Protocol):
    """Told about each tournament as it finishes (progress bars)."""

    def on_tournament(self, generation: int, number: int, total: int) -> None:
        """Tournament `number` of `total` in `generation` has finished."""
        ...


def tournament_winner(logits: Sequence[float], ranks: Sequence[float], prior_weight: float = 0.0,
                      tie_band: float = 0.0) -> int:
    """Index maximising logit - prior_weight * rank; values within tie_band of the best tie, the best rank wins.

    logits: higher = better (log softmax(alpha), or minus a held-out loss), -inf or NaN for a disqualified
    candidate; ranks in [0, 1], 0 = the best by the training-free aggregate. A difference inside the band is
    no evidence (training noise across CPUs and thread counts is that large), so the aggregate decides it.
    """
    ranks = np.asarray(ranks, dtype=float)
    values = np.asarray(logits, dtype=float) - prior_weight * ranks
    values = np.where(np.isnan(values), -np.inf, values)
    if not np.isfinite(values).any():
        return int(np.argmin(ranks))
    tied = np.flatnonzero(values >= values.max() - tie_band)
    return int(tied[np.argmin(ranks[tied])])  # argmin keeps the lowest index among equal ranks


def split_into_tournaments(n: int, size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffle n offspring indices into groups of `size`; a remainder of one joins the last group."""
    order = [int(i) for i in rng.permutation(n)]
    groups = [order[start:start + size] for start in range(0, n, size)]
    if len(groups) > 1 and len(groups[-1]) < 2:
        groups[-2].extend(groups.pop())
    return groups


class ParetoSurvival:
    """Rank-and-crowding survival on the minimised objectives."""

    kind = "pareto"

    def __init__(self, objectives: Sequence[str], ranking: Callable[[np.ndarray], np.ndarray] | None = None):
        self.objectives = tuple(objectives)
        self.ranking = ranking  # aggregates grouped objectives ("a+b") within each pool

    def select(self, parents: Sequence[Individual], children: Sequence[Individual], n: int,
               rng: np.random.Generator, generation: int) -> Selection:
        """The n Pareto-best of parents + children (no randomness: ties keep input order)."""
        pool = [*parents, *children]
        chosen = survive(objective_matrix_of(pool, self.objectives, self.ranking), n).selected
        return Selection(tuple(chosen), "initial" if not parents else self.kind)


class TournamentSurvival:
    """DARTS tournaments among the children; the remaining places go to the Pareto-best parents."""

    kind = "tournament"

    def __init__(self, size: int, play: Play, objectives: Sequence[str], listener: TournamentListener | None = None,
                 *, ranking: Callable[[np.ndarray], np.ndarray] | None = None, ranked: Sequence[str] = (),
                 prior_weight: float = 0.0, tie_band: float = 0.0):
        self.size = size  # k children per tournament
        self.play = play  # trains one group's supernet; the search passes fne.training.tournament's
        self.pareto = ParetoSurvival(objectives, ranking)
        self.listener = listener
        # The winner maximises log softmax(alphas)_i - prior_weight * r_i, r_i in [0, 1] the child's rank in its
        # group by the aggregate of the `ranked` scores (0 = best): 0 is the judge alone.
        # Values within tie_band of the best are ties that the aggregate decides (tournament_winner).
        self.ranking, self.ranked, self.prior_weight, self.tie_band = ranking, tuple(ranked), prior_weight, tie_band

    def select(self, parents: Sequence[Individual], children: Sequence[Individual], n: int,
               rng: np.random.Generator, generation: int) -> Selection:
        """Tournament winners first (Pareto-best of them if too many), then parents by rank and crowding."""
        start = time.perf_counter()
        groups = split_into_tournaments(len(children), self.size, rng)
        winners, records = [], []
        for number, group in enumerate(groups):
            if len(group) < 2:  # a lone child (too few new genotypes were found) has no one to play
                winners.append(group[0])
            else:
                winner, record = self._play([children[i] for i in group], generation, number)
                winners.append(group[winner])
                records.append(record)
            if self.listener is not None:
                self.listener.on_tournament(generation, number, len(groups))
        if len(winners) > n:
            keep = self.pareto.select([], [children[w] for w in winners], n, rng, generation).selected
            winners = [winners[i] for i in keep]
        fill = self.pareto.select([], parents, n - len(winners), rng, generation).selected if n > len(winners) else ()
        selected = tuple(len(parents) + w for w in winners) + tuple(fill)
        return Selection(selected, self.kind, tuple(records), time.perf_counter() - start)

    def _play(self, players: Sequence[Individual], generation: int, number: int) -> tuple[int, dict[str, Any]]:
        genotypes = [p.genotype for p in players]
        result = self.play(genotypes, generation, number)
        winner = self._winner(players, result.weights, result.winner)
        ids = [p.id for p in players]
        record = {"generation": generation, "tournament": number, "candidates": ";".join(map(str, ids)),
                  "genotypes": ";".join(genotypes), "alphas": json.dumps(list(result.alphas)),
                  "weights": json.dumps([round(w, 6) for w in result.weights]), "winner": ids[winner],
                  "winner_genotype": genotypes[winner], "train_loss": result.train_loss,
                  "val_loss": result.val_loss, "seconds": result.seconds}
        log.info("tournament %d.%d: %s -> %s (weights %s)", generation, number, ids, ids[winner],
                 record["weights"])
        return winner, record

    def _winner(self, players: Sequence[Individual], weights: Sequence[float], by_judge: int) -> int:
        """The judge's winner, or with a prior weight or a tie band the best of judge and heuristic rank together."""
        if not (self.prior_weight or self.tie_band) or self.ranking is None or not self.ranked:
            return by_judge
        weights = np.asarray(weights, dtype=float)
        if not (weights > 0).any():
            return by_judge
        aggregate = self.ranking(objective_matrix_of(players, self.ranked))
        order = np.argsort(np.argsort(aggregate, kind="stable"), kind="stable")  # 0 = best
        with np.errstate(divide="ignore"):  # a disqualified candidate (weight 0) stays out: log 0 = -inf
            logits = np.log(weights)
        return tournament_winner(logits, order / max(1, len(players) - 1), self.prior_weight, self.tie_band)
