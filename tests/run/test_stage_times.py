"""stage_times.csv: a run's CPU time split by stage, one row per generation and stage, kept across a resume."""

from __future__ import annotations

import pandas as pd
import pytest

from fne.run.evaluation import FunctionEvaluator
from fne.run.search import run_search
from fne.run.stage_times import STAGES, StageTimes
from tests.run.test_search import TOY_CONFIG, toy_score

# TOY_CONFIG: generations 0..3, tournaments in generation 2 (tournament_every=2), then the final pick.
EXPECTED = {(g, stage) for g in range(4) for stage in ("breeding", "scoring")} | {
    (0, "pareto"), (1, "pareto"), (2, "tournaments"), (3, "pareto"), (4, "final_pick")}


def _stages(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "stage_times.csv")


def test_a_run_records_every_stage_of_every_generation_once(tmp_path):
    run = run_search(TOY_CONFIG, tmp_path / "run", evaluator=FunctionEvaluator(toy_score, TOY_CONFIG.heuristics),
                     progress=False)
    table = _stages(run.run_dir)
    assert list(table.columns) == ["generation", "stage", "cpu_seconds", "wall_seconds"]
    assert set(zip(table["generation"], table["stage"], strict=True)) == EXPECTED and len(table) == len(EXPECTED)
    assert (table["cpu_seconds"] >= 0).all() and (table["wall_seconds"] >= 0).all()
    totals = StageTimes.read(run.run_dir / "stage_times.csv").totals()
    assert set(totals) == {*STAGES, "total"}
    for stage in STAGES:
        assert totals[stage] == pytest.approx(table.loc[table["stage"] == stage, "cpu_seconds"].sum(), abs=1e-3)
    assert totals["total"] == pytest.approx(sum(totals[s] for s in STAGES), abs=1e-2)


def test_a_resumed_run_keeps_the_completed_generations_rows_and_drops_the_rest(tmp_path):
    evaluator = FunctionEvaluator(toy_score, TOY_CONFIG.heuristics)
    run_search(TOY_CONFIG, tmp_path / "killed", evaluator=evaluator, progress=False, stop_after=1)
    path = tmp_path / "killed" / "stage_times.csv"
    written = _stages(tmp_path / "killed")
    assert set(written["generation"]) == {0, 1}
    # A crash between the stage rows and the checkpoint leaves rows of a generation that never completed.
    stray = written.iloc[[0]].assign(generation=2, cpu_seconds=1e6)
    pd.concat([written, stray]).to_csv(path, index=False)
    run_search(TOY_CONFIG, resume=tmp_path / "killed", evaluator=evaluator, progress=False)
    table = _stages(tmp_path / "killed")
    assert set(zip(table["generation"], table["stage"], strict=True)) == EXPECTED and len(table) == len(EXPECTED)
    assert table["cpu_seconds"].max() < 1e6  # the stray row is gone
    kept = table[table["generation"] <= 1].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, written.reset_index(drop=True))  # the first process's rows, unchanged

