"""Scores and Pareto objectives are per search space: each space's defaults, or the user's, recorded in config.json."""

from __future__ import annotations

from fne.genotopheno.spaces import get_space
from fne.run.config import (
    DEFAULT_OBJECTIVES,
    SearchConfig,
    config_from_dict,
    run_config_dict,
)
from fne.scoring.fitness import DEFAULT_HEURISTICS, HEURISTICS


def test_each_space_resolves_its_own_scores_and_objectives():
    darts = get_space("darts").search_defaults
    config = SearchConfig(space="darts")
    assert config.heuristics == darts["heuristics"] == ("az_expressivity", "linear_regions", "cell_breadth")
    assert config.pareto_objectives == darts["pareto_objectives"]
    assert set(config.heuristics) <= set(HEURISTICS)
    nb201 = SearchConfig(space="nb201")
    assert nb201.heuristics == DEFAULT_HEURISTICS and nb201.pareto_objectives == DEFAULT_OBJECTIVES


def test_given_scores_without_objectives_make_each_score_an_objective():
    config = SearchConfig(space="darts", heuristics=("meco", "swap"))
    assert config.pareto_objectives == () and config.objectives == ("meco", "swap")
    # naming the space's own scores keeps its objectives
    same = SearchConfig(space="nb201", heuristics=DEFAULT_HEURISTICS)
    assert same.pareto_objectives == DEFAULT_OBJECTIVES


def test_config_json_records_the_resolved_values_and_reads_them_back():
    config = SearchConfig(space="darts", generations=1)
    data = run_config_dict(config)
    assert tuple(data["search"]["heuristics"]) == config.heuristics
    again = config_from_dict(data)
    assert again.heuristics == config.heuristics and again.pareto_objectives == config.pareto_objectives
    # a run recorded before the per-space defaults (NB201's seven on DARTS) resumes with its own scores
    old = {**data, "search": {**data["search"], "heuristics": list(DEFAULT_HEURISTICS),
                              "pareto_objectives": list(DEFAULT_OBJECTIVES)}}
    assert config_from_dict(old).heuristics == DEFAULT_HEURISTICS
