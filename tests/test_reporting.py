"""`fne report` on a real tiny search: every figure is written and non-empty; missing inputs are skipped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from fne.cli import cli
from fne.errors import CheckpointError
from fne.export import genotype_from_run
from fne.figures.cells import graph_dot
from fne.genotopheno.darts_space import darts_cell_graph
from fne.genotopheno.genotype import published
from fne.genotopheno.nb201 import nb201_cell_graph
from fne.genotopheno.spaces import get_space
from fne.reporting import build_report, load_run, markdown_table
from fne.run.search import SearchConfig, run_search

NB201_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "nb201" / "nb201_cifar10.csv"
FIGURES = ("pareto_front.png", "scores_per_generation.png", "strategy_drift.png", "tournaments.png",
           "wall_time.png", "best_cell.png")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A real `fne search` run, as small as it gets: NB201, 4 + 4 individuals, a tournament in generation 2."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks; threads only contend on a shared 2-core machine
    config = SearchConfig(space="nb201", population=4, offspring=4, generations=2, tournament_every=2,
                          tournament_size=2, tournament_steps=3, batch_size=8, device="cpu", seed=0,
                          finalists=2, finalist_steps=8, finalist_C=2,
                          ground_truth=str(NB201_CSV) if NB201_CSV.is_file() else None)
    try:
        return run_search(config, tmp_path_factory.mktemp("runs") / "tiny", progress=False).run_dir
    finally:
        torch.set_num_threads(threads)


def test_report_of_a_real_run_has_every_figure(tiny_run, tmp_path):
    result = CliRunner().invoke(cli, ["report", str(tiny_run), "-o", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "report" / "README.md").read_text()
    figures = FIGURES + (("true_accuracy.png",) if NB201_CSV.is_file() else ())
    for name in figures:
        assert (tmp_path / "report" / name).stat().st_size > 1000, name
        assert f"]({name})" in page  # relative links render on GitHub
    assert page.count("_Skipped:") == (0 if NB201_CSV.is_file() else 1)
    # the page's best cell is the search's own pick (best.json), the one `fne export RUN_DIR` takes
    best = json.loads((tiny_run / "best.json").read_text())
    assert f"Genotype: `{best['genotype']}`" in page
    assert genotype_from_run(tiny_run)[1] == best["genotype"]
    front = pd.read_csv(tiny_run / "pareto_front.csv")
    assert all(f"| {genotype} |" in page for genotype in front["genotype"])
    # 2 finalists trained (--finalists 2): the page says the pick came from them and lists both
    finalists = pd.read_csv(tiny_run / "finalists.csv")
    assert "Picked by finalists" in page and "## Finalists" in page and len(finalists) == 2
    assert best["genotype"] == finalists.loc[finalists["winner"], "genotype"].item()


def test_missing_optional_files_are_skipped_with_a_note(tiny_run, tmp_path):
    run_dir = tmp_path / "partial"
    shutil.copytree(tiny_run, run_dir)
    for name in ("tournaments.csv", "timings.csv", "final_population.csv", "best.json"):
        (run_dir / name).unlink()
    history = pd.read_csv(run_dir / "history.csv")
    strategy = [c for c in history.columns if c.startswith("strategy_")]
    history.assign(true_accuracy=np.nan).drop(columns=strategy).to_csv(run_dir / "history.csv", index=False)
    page = build_report(run_dir).read_text()
    assert page.count("_Skipped:") == 4
    assert "no tournaments.csv" in page and "no timings.csv" in page and "strategy_" in page
    report = run_dir / "report"
    assert (report / "pareto_front.png").stat().st_size > 0 and (report / "best_cell.png").stat().st_size > 0
    assert not (report / "tournaments.png").exists()
    # the best cell of an unfinished run: the smallest rank_combined on the current front
    front = pd.read_csv(run_dir / "pareto_front.csv")
    assert f"Genotype: `{front.loc[front['rank_combined'].idxmin(), 'genotype']}`" in page


def test_not_a_run_directory_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not an fne run directory"):
        load_run(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no history.csv"):
        load_run(tmp_path)


def test_cell_graphs_follow_the_genotype():
    nodes, edges = darts_cell_graph(published("DARTS_V2").normal)
    assert nodes == ["c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}"]
    assert ("c_{k-2}", "0", "sep_conv_3x3") in edges and ("0", "3", "dil_conv_3x3") in edges  # input 2 = node 0
    assert sum(1 for _, target, _ in edges if target == "c_{k}") == 4
    nodes, edges = nb201_cell_graph(get_space("nb201").parse("C+CC+kCC").ops)
    assert edges[3] == ("0", "3", "skip_connect")
    dot = graph_dot(nodes, edges, "cell")
    assert dot.startswith("digraph") and '"0" -> "3" [label="skip_connect"]' in dot


def test_markdown_table_escapes_pipes():
    text = markdown_table(pd.DataFrame({"genotype": ["a|b"], "score": [0.5]}))
    assert text.splitlines() == ["| genotype | score |", "| --- | --- |", "| a\\|b | 0.5 |"]
