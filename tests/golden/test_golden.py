"""Golden runs: the restructured code reproduces the tables recorded before the restructure (timing aside).

Every recorded decision column (and every recorded row of correlations.csv) must come back identical and
every score within tests/golden/tolerance.py's SCORE_RTOL, so the tests pass on any x86 CPU; columns or
correlation rows that later features add (e.g. the other rank aggregate) are allowed beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.golden.record import GOLDEN, SEARCHES, TABLES, TIMING_COLUMNS, run_plot_scores_case, run_search_case
from tests.golden.tolerance import SCORE_RTOL, assert_same_table, smallest_relative_gap


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])
    return frame[sorted(frame.columns)]


def _same_table(recorded: Path, produced: Path, key: str | None = None) -> None:
    assert produced.exists(), f"{produced.name} was not written"
    old, new = _comparable(pd.read_csv(recorded)), _comparable(pd.read_csv(produced))
    if key is not None:  # rows identified by a key column (added rows allowed)
        new = new.set_index(key).loc[old[key]].reset_index()[old.columns]
    missing = set(old.columns) - set(new.columns)
    assert not missing, f"{produced.name} lost columns {sorted(missing)}"
    assert_same_table(new[old.columns], old, produced.name)


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_search_reproduces_the_golden_run(name, tmp_path):
    run_dir = run_search_case(name, tmp_path / name)
    for table in TABLES:
        _same_table(GOLDEN / name / table, run_dir / table)
    recorded, produced = (json.loads((d / "best.json").read_text()) for d in (GOLDEN / name, run_dir))
    for best in (recorded, produced):
        best.pop("seconds")
    assert produced.keys() == recorded.keys()
    for key, value in recorded.items():
        assert produced[key] == (pytest.approx(value, rel=SCORE_RTOL) if isinstance(value, float) else value), key


def test_plot_scores_reproduces_the_golden_study(tmp_path):
    out = run_plot_scores_case(tmp_path / "study")
    _same_table(GOLDEN / "plot_scores" / "scores.csv", out / "scores.csv")
    _same_table(GOLDEN / "plot_scores" / "correlations.csv", out / "correlations.csv", key="score")


DECISION_SCORES = ("ntk", "linear_regions", "grad_corr", "synflow", "crowding")


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_golden_cases_hold_no_near_ties(name):
    """Two candidates a generation compares never lie within twice SCORE_RTOL of each other on a score."""
    history = pd.read_csv(GOLDEN / name / "history.csv")
    populations = pd.read_csv(GOLDEN / name / "populations.csv")
    for frame, by in ((history, "generation"), (populations, "population_generation")):
        for column in (c for c in DECISION_SCORES if c in frame.columns):
            for generation, rows in frame.groupby(by):
                gap = smallest_relative_gap(rows[column])
                assert gap > 2 * SCORE_RTOL, f"{name} {by} {generation}: {column} has a near tie ({gap:.2e})"


def test_tolerance_flags_a_difference_beyond_it():
    """The comparison is not vacuous: a score off by 10x SCORE_RTOL or a changed id fails."""
    old = pd.DataFrame({"id": [1, 2], "genotype": ["a", "b"], "ntk": [10.0, 20.0]})
    assert_same_table(old.assign(ntk=[10.0 * (1 + SCORE_RTOL / 10), 20.0]), old, "t")
    with pytest.raises(AssertionError):
        assert_same_table(old.assign(ntk=[10.0 * (1 + 10 * SCORE_RTOL), 20.0]), old, "t")
    with pytest.raises(AssertionError):
        assert_same_table(old.assign(id=[1, 3]), old, "t")


def test_golden_study_holds_no_near_ties():
    """The study's correlations rank the scores: no two of its cells lie within twice SCORE_RTOL on one."""
    scores = pd.read_csv(GOLDEN / "plot_scores" / "scores.csv")
    for column in (c for c in DECISION_SCORES if c in scores.columns):
        assert smallest_relative_gap(scores[column]) > 2 * SCORE_RTOL, column
