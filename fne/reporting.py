"""`fne report`: a Markdown page with seaborn/matplotlib figures of a search run directory.

The page (RUN_DIR/report/README.md, so GitHub shows it when the folder is opened) links its PNG
figures relatively. Each figure is drawn from the run's tables; a figure whose optional input is
missing (no tournaments.csv yet, no true accuracies, no strategy columns) is skipped with a note.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fne.errors import CheckpointError, FneError
from fne.export import (
    OBJECTIVES,
    best_of_run,
    read_run_config,
    read_run_table,
    run_objectives,
    run_space,
    without_errors,
)

log = logging.getLogger(__name__)

FRONT_ROWS_SHOWN = 25


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


@dataclass(frozen=True)
class FigureEntry:
    """One section of the page: its title, figure files (none when skipped) and caption or skip note."""

    title: str
    files: tuple[str, ...]
    text: str


def load_run(run_dir: str | Path) -> RunTables:
    """Read a run directory's config and tables; CheckpointError if it is not a run or has no history."""
    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    history_path = run_dir / "history.csv"
    if not history_path.is_file():
        raise CheckpointError(f"{run_dir} has no history.csv yet (no generation has been evaluated)")
    history = read_run_table(history_path)
    missing = [c for c in ("generation", "id", "genotype") if c not in history.columns]
    if missing or history.empty:
        raise CheckpointError(f"{history_path} is empty or lacks columns {missing}; expected fne's history table")
    optional = {}
    for name in ("pareto_front", "population", "populations", "final_population", "timings", "tournaments"):
        path = run_dir / f"{name}.csv"
        if path.is_file() and path.stat().st_size > 0:
            table = read_run_table(path)
            if not table.empty:
                optional[name] = table
    return RunTables(run_dir, config, run_space(config), run_objectives(config, history.columns),
                     run_objectives(config, history.columns, ranked=True), history, optional)


def valid_rows(history: pd.DataFrame, objectives: tuple[str, ...]) -> pd.DataFrame:
    """Rows whose evaluation succeeded: every objective finite and no error text."""
    history = without_errors(history)
    return history[np.isfinite(history[list(objectives)].to_numpy(dtype=float)).all(axis=1)]


def best_individual(tables: RunTables) -> pd.Series:
    """The cell `fne export RUN_DIR` picks: best rank-combined score on the final Pareto front."""
    if "pareto_front" in tables.optional or "final_population" in tables.optional:
        return best_of_run(tables.run_dir, tables.config)
    from fne.evolution.selection import best_by_rank, pareto_fronts

    # no front file (a hand-copied history): the front of everything evaluated
    evaluated = valid_rows(tables.history, tables.objectives)
    front = evaluated.iloc[pareto_fronts(evaluated[list(tables.objectives)].to_numpy(float))[0]]
    return front.reset_index(drop=True).iloc[best_by_rank(front.reset_index(drop=True), tables.ranked)]


# ---------------------------------------------------------------- the page
def _format_value(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4g}" if abs(value) < 1e5 or abs(value) == math.inf else f"{value:.3e}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format_value(v) for v in value)
    return str(value).replace("|", "\\|")


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of a DataFrame ('|' in cells escaped)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(_format_value(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def _run_summary(tables: RunTables) -> pd.DataFrame:
    history = tables.history
    items: list[tuple[str, Any]] = [("space", tables.space), ("objectives (minimised)", list(tables.objectives)),
                                    ("fne version", tables.config.get("fne_version", "?"))]
    # The search settings (SearchConfig); the fitness and tournament details go in the folded config below.
    settings = tables.config.get("search")
    if not isinstance(settings, dict):
        settings = {k: v for k, v in tables.config.items() if not isinstance(v, dict)}
    items += [(key, value) for key, value in settings.items() if key not in ("space", "heuristics")]
    failed = len(history) - len(valid_rows(history, tables.objectives))
    items += [("generations evaluated (incl. 0)", int(history["generation"].max()) + 1),
              ("individuals evaluated", len(history)), ("failed evaluations", failed)]
    if "timings" in tables.optional and "seconds" in tables.optional["timings"].columns:
        items.append(("wall time (s)", float(tables.optional["timings"]["seconds"].sum())))
    return pd.DataFrame(items, columns=["setting", "value"])


def _score_columns(frame: pd.DataFrame, objectives: tuple[str, ...]) -> list[str]:
    extra = ("params", "flops", "rank_combined", "true_accuracy")
    columns = ["id", "generation", "genotype", *objectives, *(c for c in extra if c in frame.columns)]
    if "true_accuracy" in columns and frame["true_accuracy"].isna().all():
        columns.remove("true_accuracy")
    return [c for c in columns if c in frame.columns]


def _best_section(tables: RunTables, best: pd.Series, cell_files: list[str]) -> list[str]:
    lines = ["## Best cell", "",
             "The best rank-combined score on the final Pareto front (what `fne export RUN_DIR` picks by default).",
             "", f"Genotype: `{best['genotype']}`", ""]
    if tables.space == "nb201":
        from fne.genotopheno.nb201 import to_arch_str

        lines[-1:-1] = ["", f"NAS-Bench-201 arch string: `{to_arch_str(str(best['genotype']))}`"]
    lines += [markdown_table(best[_score_columns(best.to_frame().T, tables.objectives)].to_frame().T), ""]
    lines += [f"![{Path(f).stem.replace('_', ' ')}]({f})" for f in cell_files] + [""]
    return lines


def build_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report (README.md + PNG figures) of a run into output (default RUN_DIR/report)."""
    from fne import __version__
    from fne.figures.run_report import FIGURES, draw_best_cells

    tables = load_run(run_dir)
    output = Path(output) if output is not None else tables.run_dir / "report"
    output.mkdir(parents=True, exist_ok=True)
    entries: list[FigureEntry] = []
    for title, filename, caption, draw in FIGURES:
        entries.append(_draw(title, filename, caption, draw, tables, output))
    best = best_individual(tables)
    try:
        cell_files = draw_best_cells(tables.space, str(best["genotype"]), output)
    except FneError as error:
        log.warning("cannot draw the best cell: %s", error)
        cell_files = []

    lines = [f"# fne search report: `{tables.run_dir.name}`", "",
             f"Made by fne {__version__} from `{tables.run_dir}`. Regenerate with `fne report {tables.run_dir}"
             + ("" if output == tables.run_dir / "report" else f" -o {output}") + "`.", "",
             "## Run", "", markdown_table(_run_summary(tables)), "",
             "<details><summary>config.json</summary>", "", "```json",
             json.dumps(tables.config, indent=1, sort_keys=True), "```", "", "</details>", ""]
    lines += _best_section(tables, best, cell_files)
    if "pareto_front" in tables.optional:
        front = tables.optional["pareto_front"]
        columns = _score_columns(front, tables.objectives)
        order = front.sort_values("rank_combined") if "rank_combined" in front.columns else front
        lines += ["## Final Pareto front", "",
                  f"{len(front)} non-dominated individuals"
                  + (f" (first {FRONT_ROWS_SHOWN} by rank-combined score)" if len(front) > FRONT_ROWS_SHOWN else "")
                  + "; every objective is minimised.", "", markdown_table(order[columns].head(FRONT_ROWS_SHOWN)), ""]
    lines += ["## Figures", ""]
    for entry in entries:
        lines += [f"### {entry.title}", ""]
        lines += [f"![{entry.title}]({f})" for f in entry.files]
        lines += ["", entry.text, ""]
    page = output / "README.md"
    page.write_text("\n".join(lines))
    log.info("wrote %s with %d figures", page, sum(len(e.files) for e in entries) + len(cell_files))
    return page


def _draw(title: str, filename: str, caption: str, draw: Callable[[RunTables, Path], None], tables: RunTables,
          output: Path) -> FigureEntry:
    path = output / filename
    try:
        draw(tables, path)
    except SkipFigure as reason:
        path.unlink(missing_ok=True)  # no stale figure from an earlier report next to a "skipped" note
        return FigureEntry(title, (), f"_Skipped: {reason}._")
    return FigureEntry(title, (filename,), caption)


__all__ = ["OBJECTIVES", "RunTables", "SkipFigure", "best_individual", "build_report", "load_run", "markdown_table",
           "valid_rows"]
