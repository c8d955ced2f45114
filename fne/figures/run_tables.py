"""A search run directory as the report reads it: config and tables loaded once, and the rows worth drawing.

Both the page (fne/reporting.py) and its figures (fne/figures/run_report.py) read a run through
`RunTables`; a figure whose optional input is missing raises `SkipFigure` with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fne.errors import CheckpointError
from fne.run.rundir import best_of_run, read_config, read_table, run_objectives, run_space, without_errors

OPTIONAL_TABLES = ("pareto_front", "population", "populations", "final_population", "timings", "tournaments",
                   "finalists")


class SkipFigure(Exception):
    """A figure cannot be drawn for this run (its optional input is missing); the reason goes on the page."""


@dataclass(frozen=True)
class RunTables:
    """The tables of one run directory, read once."""

    run_dir: Path
    config: dict[str, Any]
    space: str
    objectives: tuple[str, ...]  # everything Pareto selection minimised
    ranked: tuple[str, ...]  # the heuristics the rank-combined score sums
    history: pd.DataFrame
    optional: dict[str, pd.DataFrame] = field(default_factory=dict)  # pareto_front, timings, tournaments, ...

    def table(self, name: str) -> pd.DataFrame:
        """An optional table by file stem; SkipFigure naming the missing file."""
        if name not in self.optional:
            raise SkipFigure(f"no {name}.csv in this run yet")
        return self.optional[name]


def load_run(run_dir: str | Path) -> RunTables:
    """Read a run directory's config and tables; CheckpointError if it is not a run or has no history."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    history_path = run_dir / "history.csv"
    if not history_path.is_file():
        raise CheckpointError(f"{run_dir} has no history.csv yet (no generation has been evaluated)")
    history = read_table(history_path)
    missing = [c for c in ("generation", "id", "genotype") if c not in history.columns]
    if missing or history.empty:
        raise CheckpointError(f"{history_path} is empty or lacks columns {missing}; expected fne's history table")
    optional = {}
    for name in OPTIONAL_TABLES:
        path = run_dir / f"{name}.csv"
        if path.is_file() and path.stat().st_size > 0:
            table = read_table(path)
            if not table.empty:
                optional[name] = table
    return RunTables(run_dir, config, run_space(config), run_objectives(config, history.columns),
                     run_objectives(config, history.columns, ranked=True), history, optional)


def valid_rows(history: pd.DataFrame, objectives: tuple[str, ...]) -> pd.DataFrame:
    """Rows whose evaluation succeeded: every objective finite and no error text."""
    history = without_errors(history)
    return history[np.isfinite(history[list(objectives)].to_numpy(dtype=float)).all(axis=1)]


def best_individual(tables: RunTables) -> pd.Series:
    """The cell `fne export RUN_DIR` picks: the run's best by its one rule (rundir.best_of_run)."""
    return best_of_run(tables.run_dir, tables.config)
