"""Population tables: one row per individual, fixed column order and dtypes, selection decorations.

Columns (history.csv, population.csv, final_population.csv share them): generation (of birth), id, genotype,
parents ("id;id", empty for founders), one column per heuristic, params, flops, seconds, device, error,
`strategy_*` (the individual's self-adapted mutation parameters), true_accuracy (NaN without ground
truth), then front, crowding, rank_combined (within the pool it was selected from) and, where it
applies, selected / selection.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fne.errors import DataError, GenotypeError
from fne.evolution.operators import MUTATIONS, StrategyParams
from fne.evolution.selection import rank_combined, survive
from fne.genotopheno.spaces import SearchSpace

if TYPE_CHECKING:
    from fne.evolution.search_config import SearchConfig

STRATEGY_ORDER = [f"strategy_p_{name}" for name in MUTATIONS] + ["strategy_width_step"]


def columns(config: SearchConfig, frame: pd.DataFrame) -> list[str]:
    """The canonical column order for the columns present in `frame`."""
    leading = ["generation", "id", "genotype", "parents", *config.heuristics, "params", "flops", "seconds",
               "device", "error"]
    strategy = [c for c in STRATEGY_ORDER if c in frame.columns]
    trailing = ["true_accuracy", "front", "crowding", "rank_combined", "selected", "selection", "best"]
    known = [c for c in leading + strategy + trailing if c in frame.columns]
    return known + [c for c in frame.columns if c not in known]


def normalise(frame: pd.DataFrame, config: SearchConfig) -> pd.DataFrame:
    """Fixed column order and dtypes, so tables read back from CSV or JSON equal the in-memory ones."""
    frame = frame.copy()
    if frame.empty:
        return frame
    for name in ("generation", "id", "params", "flops", "front"):
        if name in frame.columns:
            frame[name] = frame[name].astype("int64")
    for name in ("genotype", "parents", "device", "error", "selection"):
        if name in frame.columns:
            frame[name] = frame[name].astype(object).fillna("").astype(str)
    floats = [*config.heuristics, "seconds", "true_accuracy", "crowding", "rank_combined",
              *(c for c in frame.columns if c.startswith("strategy_"))]
    for name in floats:
        if name in frame.columns:
            frame[name] = frame[name].astype("float64")
    for name in ("selected", "best"):
        if name in frame.columns:
            frame[name] = frame[name].astype(bool)
    return frame[columns(config, frame)].reset_index(drop=True)


def decorate(pool: pd.DataFrame, config: SearchConfig, selected: list[int] | None) -> pd.DataFrame:
    """Add front and crowding (Pareto survival over the pool), rank_combined and, if given, the selected flag."""
    pool = pool.reset_index(drop=True).copy()
    survival = survive(pool[list(config.objectives)].to_numpy(dtype=float), len(pool))
    pool["front"] = survival.front
    pool["crowding"] = survival.crowding
    pool["rank_combined"] = rank_combined(pool, config.heuristics)
    if selected is not None:
        flags = np.zeros(len(pool), dtype=bool)
        flags[list(selected)] = True
        pool["selected"] = flags
    return normalise(pool, config)


def strategy_of(row: dict[str, Any]) -> StrategyParams:
    """The StrategyParams stored in a table row's `strategy_*` columns."""
    return StrategyParams.from_columns(row)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows (Python scalars; +inf and NaN kept as floats)."""
    return [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]


def best_row(population: pd.DataFrame, config: SearchConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The final population with rank_combined over itself and a `best` flag, and the best row as a dict."""
    final = population.drop(columns=[c for c in ("selected", "selection") if c in population.columns])
    final = final.reset_index(drop=True).copy()
    final["rank_combined"] = rank_combined(final, config.heuristics)
    best_index = int(np.argmin(final["rank_combined"].to_numpy()))
    final["best"] = np.arange(len(final)) == best_index
    final = normalise(final, config)
    best = {key: value for key, value in records(final)[best_index].items() if key != "best"}
    best["rank_combined_of"] = list(config.heuristics)
    return final, best


def load_ground_truth(space: SearchSpace, path: str | Path) -> dict[str, float]:
    """Canonical genotype -> true accuracy from a CSV with arch_str and cifar10_test (NB201's ground truth)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"--ground-truth {path}: no such file; expected a CSV with columns arch_str,cifar10_test "
                        "(e.g. ../shared/data/nb201/nb201_cifar10.csv)")
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as error:
        raise DataError(f"--ground-truth {path} is not a readable CSV ({error})") from None
    missing = [c for c in ("arch_str", "cifar10_test") if c not in table.columns]
    if missing:
        raise DataError(f"--ground-truth {path} lacks column(s) {missing}; expected arch_str,cifar10_test")
    truth = {}
    for arch, accuracy in zip(table["arch_str"], table["cifar10_test"], strict=True):
        try:
            truth[space.canonical(str(arch))] = float(accuracy)
        except GenotypeError as error:
            raise DataError(f"--ground-truth {path}: {error}") from None
    if not truth or any(math.isnan(v) for v in truth.values()):
        raise DataError(f"--ground-truth {path} has no usable accuracies")
    return truth
