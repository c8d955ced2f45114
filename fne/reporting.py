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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fne.errors import FneError
from fne.figures.run_report import FIGURES, draw_best_cells
from fne.figures.run_tables import RunTables, SkipFigure, best_individual, load_run, valid_rows
from fne.genotopheno.spaces import get_space
from fne.version import __version__

log = logging.getLogger(__name__)

FRONT_ROWS_SHOWN = 25


@dataclass(frozen=True)
class FigureEntry:
    """One section of the page: its title, figure files (none when skipped) and caption or skip note."""

    title: str
    files: tuple[str, ...]
    text: str


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
    how = best.get("picked_by")
    how = f"Picked by {how}" if isinstance(how, str) else "The smallest rank_combined of the run's final pick"
    lines = ["## Best cell", "", f"{how} (what `fne export RUN_DIR` picks by default).", "",
             f"Genotype: `{best['genotype']}`", ""]
    for label, text in get_space(tables.space).alternative_forms(str(best["genotype"])).items():
        lines[-1:-1] = ["", f"{label}: `{text}`"]
    lines += [markdown_table(best[_score_columns(best.to_frame().T, tables.objectives)].to_frame().T), ""]
    lines += [f"![{Path(f).stem.replace('_', ' ')}]({f})" for f in cell_files] + [""]
    return lines


def build_report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the report (README.md + PNG figures) of a run into output (default RUN_DIR/report)."""
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
    if "finalists" in tables.optional:
        finalists = tables.optional["finalists"].sort_values(["steps", "tse"], ascending=[False, True])
        lines += ["## Finalists", "", f"The {len(finalists)} best by rank_combined trained briefly; each row: the "
                  "steps it trained before successive halving stopped it and its training-speed estimate (mean "
                  "training loss, lower = faster). The winner is the pick.", "", markdown_table(finalists), ""]
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


# RunTables and its helpers live in fne/figures/run_tables.py (the figures read them too); named here for users.
__all__ = ["RunTables", "SkipFigure", "best_individual", "build_report", "load_run", "markdown_table",
           "valid_rows"]
