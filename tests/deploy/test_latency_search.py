"""A search under a latency budget: the predictor's budget holds for every candidate bred, latency_ms is
recorded, log_latency is a Pareto objective, and a missing or corrupt table stops the search in one line."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from fne.cli import cli, run_command
from fne.deploy.latency_model import LatencyPredictor
from fne.deploy.latency_table import TableKey, table_path, write_table
from fne.errors import ConfigError
from fne.genotopheno.spaces import get_space
from fne.run.evaluation import FunctionEvaluator
from fne.run.search import SearchConfig, build_evolution, run_search
from tests.deploy.fake_tables import counting_table
from tests.run.test_search import ORIGINAL

HEURISTICS = ORIGINAL["heuristics"]


def toy_scores(genotype: str) -> dict[str, float]:
    """Scores that prefer convolutions, as a size-rewarding heuristic would: without a budget they grow."""
    return {name: -float(genotype.count("C") + 0.5 * genotype.count("c")) - 0.01 * i
            for i, name in enumerate(HEURISTICS)}


@pytest.fixture()
def nb201_table(tmp_path, monkeypatch):
    """The FLOP-valued NB201 table stored as this machine's 1-thread CPU table in a temporary cache."""
    monkeypatch.setenv("FNE_CACHE_DIR", str(tmp_path / "cache"))
    key = TableKey.current("cpu", 1)
    table = counting_table(get_space("nb201"), "flops", key=key, offset=1.0)
    write_table(table, table_path(key))
    return LatencyPredictor(table, get_space("nb201"), 32)


def _config(**settings) -> SearchConfig:
    return SearchConfig(**ORIGINAL, space="nb201", population=6, offspring=6, generations=3, tournament_every=0,
                        seed=4, latency_threads=1, **settings)


def test_no_candidate_over_the_budget_is_ever_bred(nb201_table, tmp_path):
    free = run_search(_config(), tmp_path / "free", evaluator=FunctionEvaluator(toy_scores, HEURISTICS),
                      progress=False)
    unbounded = [nb201_table.predict_ms(g) for g in free.history["genotype"]]
    budget = sorted(unbounded)[len(unbounded) // 2]  # half of the free search's candidates are over it
    run = run_search(_config(max_latency_ms=budget), tmp_path / "run",
                     evaluator=FunctionEvaluator(toy_scores, HEURISTICS), progress=False)
    history = pd.read_csv(run.run_dir / "history.csv")
    predicted = [nb201_table.predict_ms(g) for g in history["genotype"]]
    assert max(predicted) <= budget < max(unbounded)
    assert history["latency_ms"].tolist() == pytest.approx(predicted)
    assert "latency_ms" not in free.history.columns  # no budget, no objective: the run is as before
    assert run.best["latency_ms"] <= budget


def test_the_budget_is_honoured_by_ask(nb201_table):
    config = _config(max_latency_ms=2.0e7)
    loop = build_evolution(get_space("nb201"), config, latency=nb201_table)
    founders = loop.ask()
    assert founders and all(nb201_table.predict_ms(c.genotype) <= 2.0e7 for c in founders)


def test_log_latency_is_a_pareto_objective(nb201_table, tmp_path):
    config = _config(extra_objectives=("log_latency",))
    assert config.objectives[-1] == "log_latency"
    run = run_search(config, tmp_path / "run", evaluator=FunctionEvaluator(toy_scores, HEURISTICS), progress=False)
    population = run.population
    assert (population["latency_ms"] > 0).all()
    fastest = population.loc[population["latency_ms"].idxmin()]
    assert fastest["front"] == 0  # nothing is faster, so nothing dominates it (fronts count from 0)
    free = run_search(_config(), tmp_path / "free", evaluator=FunctionEvaluator(toy_scores, HEURISTICS),
                      progress=False)
    assert population["latency_ms"].min() <= min(nb201_table.predict_ms(g) for g in free.population["genotype"])
    recorded = json.loads((run.run_dir / "config.json").read_text())["latency_table"]
    assert recorded["threads"] == 1 and recorded["sha256"] and recorded["path"].endswith(".json")
    assert math.isfinite(population["latency_ms"].sum())


def test_latency_settings_are_checked():
    assert SearchConfig(space="nb201").latency_threads is None  # nothing resolved when latency is not used
    assert SearchConfig(space="nb201", max_latency_ms=3.0).latency_threads >= 1
    with pytest.raises(ConfigError, match="max_latency_ms"):
        SearchConfig(space="nb201", max_latency_ms=-1.0)


@pytest.mark.parametrize("content", [None, "corrupt"])
def test_a_missing_or_corrupt_table_stops_the_search_in_one_line(tmp_path, monkeypatch, capsys, content):
    monkeypatch.setenv("FNE_CACHE_DIR", str(tmp_path / "cache"))
    if content is not None:
        path = table_path(TableKey.current("cpu", 1))
        path.parent.mkdir(parents=True)
        path.write_text(content)
    out = tmp_path / "run"
    code = run_command(cli, ["search", "--space", "nb201", "--max-latency-ms", "5", "--latency-threads", "1",
                             "--out", str(out), "--no-progress"], prog_name="fne")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert ("corrupt" if content else "no latency table") in err and "fne latency-table" in err
    assert not out.exists()
