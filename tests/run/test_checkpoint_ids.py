"""The run directory's reader refuses a checkpoint whose population is not the one populations.csv recorded."""

from __future__ import annotations

import contextlib
import io
import json

import pandas as pd
import pytest

from fne.cli import cli, run_command
from fne.errors import CheckpointError
from fne.run import rundir
from fne.run.evaluation import FunctionEvaluator
from fne.run.search import SearchConfig, run_search
from tests.run.test_search import ORIGINAL, toy_score

CONFIG = SearchConfig(**ORIGINAL, space="nb201", population=4, offspring=3, generations=3, tournament_every=0, seed=5)


@pytest.fixture()
def stopped_run(tmp_path):
    """A real run stopped after generation 1 (its checkpoint names the population of generation 1)."""
    run = run_search(CONFIG, tmp_path / "run", evaluator=FunctionEvaluator(toy_score, CONFIG.heuristics),
                     progress=False, stop_after=1)
    return run.run_dir


def _edit_ids(run_dir, ids):
    path = run_dir / "checkpoint.json"
    checkpoint = json.loads(path.read_text())
    checkpoint["population_ids"] = ids
    path.write_text(json.dumps(checkpoint))


def test_the_untouched_checkpoint_matches_populations_csv(stopped_run):
    checkpoint = rundir.read_checkpoint(stopped_run, rundir.read_config(stopped_run))
    populations = pd.read_csv(stopped_run / "populations.csv")
    assert checkpoint["population_ids"] == list(populations[populations["population_generation"] == 1]["id"])


@pytest.mark.parametrize("edit", ["duplicated", "reordered"])
def test_edited_population_ids_are_refused_with_one_line_and_exit_2(stopped_run, edit):
    ids = json.loads((stopped_run / "checkpoint.json").read_text())["population_ids"]
    forged = [0, 0] if edit == "duplicated" else ids[::-1]
    _edit_ids(stopped_run, forged)
    with pytest.raises(CheckpointError, match=r"names population ids .* but populations.csv holds"):
        rundir.read_checkpoint(stopped_run, rundir.read_config(stopped_run))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_command(cli, ["search", "--resume", str(stopped_run), "--no-progress"], prog_name="fne")
    lines = err.getvalue().strip().splitlines()
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert f"names population ids {forged}" in lines[0] and "populations.csv holds" in lines[0]
