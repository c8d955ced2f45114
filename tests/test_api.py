"""The Python API: a search in one call, the loop driven by hand, and scoring a list of genotypes."""

from __future__ import annotations

import math

import pytest

import fne
from fne.api import SearchConfig, score_candidates
from fne.run.evaluation import FunctionEvaluator
from tests.run.test_search import ORIGINAL, toy_score


def test_search_in_one_call_equals_the_loop_driven_by_hand(tmp_path):
    settings = dict(**ORIGINAL, space="nb201", population=4, offspring=3, generations=2, tournament_every=0, seed=7)
    evaluator = FunctionEvaluator(toy_score, ORIGINAL["heuristics"])
    result = fne.search(out=tmp_path / "run", evaluator=evaluator, **settings)
    assert result.completed_generation == 2 and result.best is not None
    assert len(result.history) == 4 + 3 + 3

    loop = fne.search_loop(SearchConfig(**settings))
    while not loop.done:
        loop.tell(score_candidates(loop.ask(), evaluator, loop.config.heuristics))
    assert [ind.genotype for ind in loop.population] == list(result.population["genotype"])


def test_score_a_list_of_genotypes():
    table = fne.score(["C+CC+kCC", "n+nn+nnn"], space="nb201", batch_size=8, C=4, layers=1, device="cpu",
                      heuristics=("ntk", "linear_regions"))
    assert list(table["genotype"]) == ["C+CC+kCC", "n+nn+nnn"]
    assert math.isfinite(table["ntk"][0]) and math.isinf(table["ntk"][1])  # all-none is undefined: +inf
    # The search's default aggregate, AZ-NAS's sum of log ranks: 0 for the genotype best on both scores,
    # log 2 + log 2 for the one second on both.
    assert table["rank_combined"].tolist() == pytest.approx([0.0, 2 * math.log(2)])
    linear = fne.score(["C+CC+kCC", "n+nn+nnn"], space="nb201", batch_size=8, C=4, layers=1, device="cpu",
                       heuristics=("ntk", "linear_regions"), aggregate="linear")
    assert list(linear["rank_combined"]) == [2.0, 4.0]  # TE-NAS's rank sum: ranks 1 + 1 and 2 + 2
