"""Size budgets: no candidate over the budget is ever bred or scored; the DARTS space has a default one."""

from __future__ import annotations

import pandas as pd
import pytest

from fne.errors import ConfigError
from fne.evolution.budget import BudgetCheck, SizeBudget
from fne.genotopheno.network import count_parameters
from fne.genotopheno.spaces import get_space
from fne.run.evaluation import FunctionEvaluator
from fne.run.search import SearchConfig, run_search
from tests.run.test_search import ORIGINAL


def widest_first(genotype: str) -> dict[str, float]:
    """A toy score that rewards wide stages, as a size-rewarding heuristic would."""
    widths = [int(w) for w in genotype.split("|")[2].split(".")]
    return {"ntk": -sum(widths), "linear_regions": -widths[-1], "grad_corr": -widths[0]}


def test_a_search_never_evaluates_a_network_over_its_budget(tmp_path):
    config = SearchConfig(**ORIGINAL, space="darts", population=4, offspring=4, generations=3, tournament_every=0,
                          seed=2, max_params=120_000)
    run = run_search(config, tmp_path / "run", evaluator=FunctionEvaluator(widest_first, config.heuristics),
                     progress=False)
    space = get_space("darts")
    sizes = [count_parameters(space.build(g, seed=0)) for g in pd.read_csv(run.run_dir / "history.csv")["genotype"]]
    assert max(sizes) <= 120_000
    unbounded = SearchConfig(**ORIGINAL, space="darts", population=4, offspring=4, generations=3, tournament_every=0,
                             seed=2,
                             max_params=0)
    free = run_search(unbounded, tmp_path / "free", evaluator=FunctionEvaluator(widest_first, config.heuristics),
                      progress=False)
    assert max(count_parameters(space.build(g, seed=0)) for g in free.history["genotype"]) > 120_000


def test_budget_defaults_and_checks(tmp_path):
    assert SearchConfig(space="darts").max_params == 300_000
    assert SearchConfig(space="nb201").max_params is None
    with pytest.raises(ConfigError, match="max_params"):
        SearchConfig(space="darts", max_params=-1)
    check = BudgetCheck(get_space("darts"), SizeBudget(max_params=130_000))
    darts_v2 = "s0s1-s0s1-s1k0-k0d2|m0m1-k2m1-m0k2-k2m1|16.32.64|1.1.1"
    assert check.size(darts_v2)[0] == 129_706 and check.fits(darts_v2)
    assert not check.fits(darts_v2.replace("16.32.64", "20.40.80"))
    with pytest.raises(ConfigError, match="size budget"):
        run_search(SearchConfig(**ORIGINAL, space="darts", population=4, generations=0, tournament_every=0,
                                max_params=1000),
                   tmp_path / "never", evaluator=FunctionEvaluator(widest_first, ("ntk", "linear_regions",
                                                                                   "grad_corr")), progress=False)
    assert not (tmp_path / "never").exists()  # a run that failed before its first generation leaves no stub
