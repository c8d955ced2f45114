"""Typed records of the search: a `Candidate` the loop asks to have scored, the scored `Individual`.

The loop works on these records; tables are made from them only when they are written (`table_of`), with
one fixed column order and dtype schema, so a table read back from CSV equals the one written.

Columns (history.csv, population.csv, final_population.csv share them): generation (of birth), id, genotype,
parents ("id;id", empty for founders), one column per scored heuristic, params, flops, seconds, device,
error, `strategy_*` (the individual's self-adapted mutation parameters), true_accuracy (NaN without ground
truth), then the decorations of the pool a table was ranked in: front, crowding, rank_combined and, where
they apply, selected, selection and best.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fne.evolution.operators import MUTATIONS, StrategyParams

STRATEGY_ORDER = [f"strategy_p_{name}" for name in MUTATIONS] + ["strategy_width_step"]
INTEGER_COLUMNS = ("generation", "id", "params", "flops", "front", "population_generation")
TEXT_COLUMNS = ("genotype", "parents", "device", "error", "selection")
FLAG_COLUMNS = ("selected", "best")
DECORATIONS = ("true_accuracy", "front", "crowding", "rank_combined", "selected", "selection", "best")


@dataclass(frozen=True)
class Candidate:
    """A child the loop wants scored: its id, generation, genotype, parents and inherited strategy."""

    id: int
    generation: int
    genotype: str
    parents: tuple[int, ...]
    strategy: StrategyParams


@dataclass(frozen=True)
class Individual:
    """A scored candidate: everything history.csv records about it at birth."""

    id: int
    generation: int
    genotype: str
    parents: tuple[int, ...]
    strategy: StrategyParams
    scores: Mapping[str, float]  # every score column the evaluator returned (heuristics, minimised)
    params: int = -1
    flops: int = -1
    seconds: float = 0.0
    device: str = ""
    error: str = ""
    true_accuracy: float = math.nan
    extra: Mapping[str, Any] = field(default_factory=dict)  # further evaluator columns, kept as they came

    def objective(self, name: str) -> float:
        """The minimised value of objective `name`: a score, params/flops, or log_latency (of latency_ms)."""
        if name in self.scores:
            return float(self.scores[name])
        if name in ("params", "flops"):
            return float(getattr(self, name))
        if name == "log_latency" and "latency_ms" in self.extra:  # the search's latency column (fne/deploy)
            return math.log(float(self.extra["latency_ms"]))
        raise KeyError(f"individual {self.id} has no objective {name!r}")

    def row(self) -> dict[str, Any]:
        """The individual's table row (without the decorations of any pool)."""
        return {"generation": self.generation, "id": self.id, "genotype": self.genotype,
                "parents": ";".join(map(str, self.parents)), **self.scores, "params": self.params,
                "flops": self.flops, "seconds": self.seconds, "device": self.device, "error": self.error,
                **self.extra, **self.strategy.as_columns(), "true_accuracy": self.true_accuracy}


def scored(candidate: Candidate, row: Mapping[str, Any], score_names: Sequence[str],
           true_accuracy: float = math.nan) -> Individual:
    """The Individual of a candidate and its evaluator row (score_genotypes' columns)."""
    known = {"genotype", *score_names, "params", "flops", "seconds", "device", "error"}
    return Individual(
        id=candidate.id, generation=candidate.generation, genotype=candidate.genotype, parents=candidate.parents,
        strategy=candidate.strategy, scores={name: float(row[name]) for name in score_names},
        params=int(row.get("params", -1)), flops=int(row.get("flops", -1)), seconds=float(row.get("seconds", 0.0)),
        device=str(row.get("device", "")), error=_text(row.get("error", "")), true_accuracy=float(true_accuracy),
        extra={key: value for key, value in row.items() if key not in known})


def from_row(row: Mapping[str, Any], score_names: Sequence[str]) -> Individual:
    """The Individual recorded in a table row (inverse of `Individual.row`)."""
    parents = _text(row.get("parents", ""))
    reserved = {"generation", "id", "genotype", "parents", *score_names, "params", "flops", "seconds", "device",
                "error", "true_accuracy", *DECORATIONS, "population_generation"}
    return Individual(
        id=int(row["id"]), generation=int(row["generation"]), genotype=str(row["genotype"]),
        parents=tuple(int(p) for p in parents.split(";") if p != ""), strategy=StrategyParams.from_columns(row),
        scores={name: float(row[name]) for name in score_names}, params=int(row["params"]),
        flops=int(row["flops"]), seconds=float(row["seconds"]), device=_text(row.get("device", "")),
        error=_text(row.get("error", "")), true_accuracy=float(row.get("true_accuracy", math.nan)),
        extra={key: value for key, value in row.items() if key not in reserved and not key.startswith("strategy_")})


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def objective_matrix_of(individuals: Sequence[Individual], objectives: Sequence[str],
                        ranking: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """(n, m) float matrix of the individuals' minimised objectives (non-finite values left as they are).

    An objective "a+b+c" is a group of scores: its value is `ranking` (the search's rank aggregate) of
    those scores within this set of individuals, so a few decorrelated groups can be Pareto objectives.
    """
    columns = []
    for name in objectives:
        members = name.split("+")
        values = np.array([[ind.objective(m) for m in members] for ind in individuals], dtype=float
                          ).reshape(len(individuals), len(members))
        if len(members) > 1:
            if ranking is None:
                raise ValueError(f"objective {name!r} groups scores: it needs a ranking to aggregate them")
            values = np.asarray(ranking(values), dtype=float).reshape(len(individuals), 1)
        columns.append(values[:, 0])
    return np.column_stack(columns) if columns else np.zeros((len(individuals), 0))


def column_order(frame: pd.DataFrame, score_names: Sequence[str]) -> list[str]:
    """The canonical column order for the columns present in `frame`."""
    leading = ["population_generation", "generation", "id", "genotype", "parents", *score_names, "params", "flops",
               "seconds", "device", "error"]
    strategy = [c for c in STRATEGY_ORDER if c in frame.columns]
    known = [c for c in leading + strategy + list(DECORATIONS) if c in frame.columns]
    return known + [c for c in frame.columns if c not in known]


def apply_schema(frame: pd.DataFrame, score_names: Sequence[str]) -> pd.DataFrame:
    """The table with fne's fixed column order and dtypes (what a CSV round trip gives back)."""
    frame = frame.copy()
    if frame.empty:
        return frame
    for name in INTEGER_COLUMNS:
        if name in frame.columns:
            frame[name] = frame[name].astype("int64")
    for name in TEXT_COLUMNS:
        if name in frame.columns:
            frame[name] = frame[name].astype(object).fillna("").astype(str)
    floats = [*score_names, "seconds", "true_accuracy", "crowding", "rank_combined",
              *(c for c in frame.columns if c.startswith("strategy_"))]
    for name in floats:
        if name in frame.columns:
            frame[name] = frame[name].astype("float64")
    for name in FLAG_COLUMNS:
        if name in frame.columns:
            frame[name] = frame[name].astype(bool)
    return frame[column_order(frame, score_names)].reset_index(drop=True)


def table_of(individuals: Sequence[Individual], score_names: Sequence[str],
             decorations: Mapping[str, Sequence[Any]] | None = None) -> pd.DataFrame:
    """One row per individual, in order, with optional per-row decoration columns (front, crowding, ...)."""
    frame = pd.DataFrame([ind.row() for ind in individuals])
    for name, values in (decorations or {}).items():
        frame[name] = list(values)
    return apply_schema(frame, score_names)
