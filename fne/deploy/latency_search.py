"""A search under a latency budget: the table's predictions as a budget check and as a column of every row.

`--max-latency-ms X` takes every founder or child whose predicted latency is over X out before it is scored
(as `--max-params` does); `--extra-objective log_latency` makes log(predicted ms) a minimised Pareto
objective. Both read `latency_ms`, the prediction that `LatencyColumn` adds to each evaluator row, so
history.csv records it. Predictions come from the table of `--latency-device` at `--latency-threads`
(fne latency-table), at the search's image size: the same seed gives the same run on a busy machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import pandas as pd

from fne.data.source import input_shape, open_data
from fne.deploy.latency_model import LatencyPredictor
from fne.deploy.latency_table import TableKey, load_table, table_path
from fne.device import resolve_device
from fne.genotopheno.spaces import get_space

LATENCY_COLUMN = "latency_ms"
LATENCY_OBJECTIVE = "log_latency"


def uses_latency(config: Any) -> bool:
    """True when a search config bounds or minimises latency."""
    return bool(config.max_latency_ms) or LATENCY_OBJECTIVE in config.extra_objectives


def table_key(config: Any) -> TableKey:
    """The key of the table a search config predicts from: its latency device and thread count, this torch."""
    return TableKey.current(resolve_device(config.latency_device), config.latency_threads)


def search_predictor(config: Any) -> LatencyPredictor | None:
    """The predictor of a search config (None when it uses no latency); DeployError when its table is missing."""
    if not uses_latency(config):
        return None
    side = input_shape(open_data(config.data, config.image_size))[1]
    return LatencyPredictor(load_table(table_key(config)), get_space(config.space), side)


def table_record(config: Any) -> dict[str, Any]:
    """What config.json records about the table a search predicts from: its key, file and content digest."""
    key = table_key(config)
    path = table_path(key)
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return {**asdict(key), "path": str(path), "sha256": digest}


def latency_fits(predictor: LatencyPredictor, max_latency_ms: float) -> Callable[[str], bool]:
    """genotype -> True when its predicted latency is within the budget."""
    return lambda genotype: predictor.predict_ms(genotype) <= max_latency_ms


class LatencyColumn:
    """An evaluator whose rows also carry each genotype's predicted latency (`latency_ms`)."""

    def __init__(self, inner: Any, predictor: LatencyPredictor):
        self.inner, self.predictor = inner, predictor
        self.chunk_size = getattr(inner, "chunk_size", None)

    def evaluate(self, genotypes: list[str]) -> pd.DataFrame:
        """The inner evaluator's rows with `latency_ms` added."""
        frame = self.inner.evaluate(genotypes)
        frame[LATENCY_COLUMN] = [self.predictor.predict_ms(genotype) for genotype in genotypes]
        return frame

    def close(self) -> None:
        """Close the inner evaluator."""
        self.inner.close()


def with_latency(evaluator: Any, predictor: LatencyPredictor | None) -> Any:
    """The evaluator with the latency column when a predictor is given (once: a wrapped one is kept as is)."""
    if predictor is None or isinstance(evaluator, LatencyColumn):
        return evaluator
    return LatencyColumn(evaluator, predictor)
