"""Golden runs: the restructured code reproduces the tables recorded before the restructure (timing aside).

Every recorded column (and every recorded row of correlations.csv) must come back identical; columns or
correlation rows that later features add (e.g. the other rank aggregate) are allowed beside them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from tests.golden.record import GOLDEN, SEARCHES, TABLES, TIMING_COLUMNS, run_plot_scores_case, run_search_case


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
    pd.testing.assert_frame_equal(new[old.columns], old, check_exact=False, rtol=1e-9, atol=0.0)


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
        assert produced[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), key


def test_plot_scores_reproduces_the_golden_study(tmp_path):
    out = run_plot_scores_case(tmp_path / "study")
    _same_table(GOLDEN / "plot_scores" / "scores.csv", out / "scores.csv")
    _same_table(GOLDEN / "plot_scores" / "correlations.csv", out / "correlations.csv", key="score")
