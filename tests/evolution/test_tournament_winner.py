"""tournament_winner: the judge's value against the heuristic rank, and differences inside the noise band as ties."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fne.evolution.individual import Individual
from fne.evolution.operators import StrategyParams
from fne.evolution.survival import TournamentSurvival, tournament_winner
from fne.run.config import SearchConfig
from fne.scoring.aggregation import linear_rank_sum


def oracle(values, ranks, w, band):
    """By hand: the best value after the prior; every candidate within the band of it is tied; best rank wins."""
    adjusted = [v - w * r if not math.isnan(v) else -math.inf for v, r in zip(values, ranks, strict=True)]
    top = max(adjusted)
    tied = [i for i, a in enumerate(adjusted) if a >= top - band]
    return min(tied, key=lambda i: (ranks[i], i))


@pytest.mark.parametrize("values, ranks, w, band, expected", [
    ([-2.00, -1.95, -2.10], [0.0, 1.0, 0.5], 0.0, 0.0, 1),  # the judge alone
    ([-2.00, -1.95, -2.10], [0.0, 1.0, 0.5], 0.0, 0.06, 0),  # 0.05 apart is inside the band: the aggregate's
    ([-2.00, -1.95, -2.10], [0.0, 1.0, 0.5], 0.0, 0.04, 1),  # outside it: the judge's
    ([-2.00, -1.95, -2.10], [0.0, 1.0, 0.5], 0.1, 0.0, 0),  # the prior outweighs 0.05 at w = 0.1
    ([-2.00, -1.80, -2.10], [0.0, 1.0, 0.5], 0.1, 0.0, 1),  # not 0.2
    ([math.nan, -1.80, -2.10], [0.0, 1.0, 0.5], 0.0, 1.0, 2),  # a disqualified candidate never wins
    ([math.nan, math.nan], [1.0, 0.0], 0.0, 0.0, 1),  # nothing played: the aggregate's pick
])
def test_winner_matches_the_hand_rule(values, ranks, w, band, expected):
    assert tournament_winner(values, ranks, w, band) == expected
    if not all(math.isnan(v) for v in values):
        assert oracle(values, ranks, w, band) == expected


def test_random_cases_match_the_oracle():
    rng = np.random.default_rng(0)
    for _ in range(500):
        k = int(rng.integers(2, 6))
        values = list(-2.3 + 0.3 * rng.random(k))
        ranks = list(rng.permutation(k) / (k - 1))
        w, band = float(rng.choice([0, 0.05, 0.5])), float(rng.choice([0, 0.01, 0.05]))
        assert tournament_winner(values, ranks, w, band) == oracle(values, ranks, w, band)


def _players(scores):
    return [Individual(i, 1, f"g{i}", (), StrategyParams(()), {"s": s}) for i, s in enumerate(scores)]


def test_a_difference_inside_the_darts_band_does_not_flip_the_decision():
    """Noise smaller than the band (as between thread counts) leaves a near tie to the aggregate, either way."""
    config = SearchConfig(space="darts")
    band, w = config.tournament_tie_band, config.tournament_prior
    assert band > 0

    def survival(tie_band: float) -> TournamentSurvival:
        return TournamentSurvival(4, None, ("s",), ranking=linear_rank_sum, ranked=("s",), prior_weight=w,
                                  tie_band=tie_band)

    players = _players([1.0, 2.0, 3.0, 4.0])  # ranks 0, 1/3, 2/3, 1: player 0 is the aggregate's best
    # Player 1's training speed makes up exactly its prior handicap w/3: after the prior the two are level.
    level = np.array([-2.0, -2.0 + w / 3, -2.3, -2.4])
    for noise in (+0.9 * band, -0.9 * band):  # player 1 slightly ahead or slightly behind
        shifted = level + np.array([0.0, noise, 0.0, 0.0])
        weights = np.exp(shifted) / np.exp(shifted).sum()
        assert survival(band)._winner(players, weights, int(np.argmax(shifted))) == 0
        # without the band the noise alone would decide
        assert survival(0.0)._winner(players, weights, 1) == (1 if noise > 0 else 0)
    clear = level + np.array([0.0, 1.1 * band, 0.0, 0.0])  # a lead beyond the band wins
    assert survival(band)._winner(players, np.exp(clear) / np.exp(clear).sum(), 1) == 1
