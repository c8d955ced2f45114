"""The final pick of a finished search: the best individual of the pool (`SearchConfig.final_pick`).

The pool is ranked by the aggregate (`rank_combined`); with `finalists` its best distinct genotypes train
briefly (fne.training.finalists: successive halving by training speed, the last survivors decided by
training speed and the aggregate together), else the smallest aggregate wins. The result is written to
best.json and flagged in final_population.csv by the recorder.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from fne.data.dataset import Dataset
from fne.data.source import open_data, uint8_images
from fne.device import resolve_device
from fne.evolution.individual import Individual, objective_matrix_of, table_of
from fne.evolution.loop import decorate
from fne.genotopheno.spaces import SearchSpace, get_space
from fne.run.config import SearchConfig
from fne.run.progress import FinalistsBar
from fne.training.finalists import shortlist, stream_positions, successive_halving

log = logging.getLogger(__name__)


def final_pick(config: SearchConfig, population: Sequence[Individual], evaluated: Sequence[Individual],
               space: SearchSpace | None = None, progress: bool = False, dataset: Dataset | None = None
               ) -> tuple[pd.DataFrame, dict[str, Any], pd.DataFrame | None]:
    """final_population.csv (aggregate over itself, `best` flag), best.json's record and the finalists' table.

    The pool (config.final_pick) is ranked by the aggregate; with config.finalists its best distinct
    genotypes train briefly and finalists.py picks among them by training speed and the aggregate, else the
    smallest aggregate wins. `dataset` is the run's opened data (None: config.data is opened).
    """
    names = config.heuristics
    pool = list(population) if config.final_pick == "population" else list(evaluated)
    scores = config.ranking()(objective_matrix_of(pool, names))
    winner, finalists = int(np.argmin(scores)), None
    chosen = shortlist([ind.genotype for ind in pool], scores, config.finalists)
    if len(chosen) > 1:  # one distinct candidate (or finalists 0 or 1) leaves nothing to decide
        winner, finalists = _run_finalists(config, space or get_space(config.space), pool, scores, chosen,
                                           progress, dataset)
    own = decorate(population, config.objectives, names, config.ranking())
    final = table_of(population, names, {**own.columns(), "best": [ind.id == pool[winner].id for ind in population]})
    if config.final_pick == "population" and finalists is None:  # decorated over the final population
        best = {key: _plain(value) for key, value in final[final["best"]].iloc[0].items() if key != "best"}
    else:  # the individual's row with its aggregate over the pool
        best = {key: _plain(value) for key, value in
                table_of([pool[winner]], names, {"rank_combined": [scores[winner]]}).iloc[0].items()}
    best["rank_combined_of"] = list(names)
    if finalists is not None:
        row = finalists[finalists["winner"]].iloc[0]
        best["picked_by"] = picked_by_finalists(len(finalists))
        best["finalist_tse"] = _plain(row["tse"])
        best["finalist_steps"] = _plain(row["steps"])
    return final, best, finalists


def picked_by_finalists(count: int) -> str:
    """best.json's `picked_by` when the finalists' stage decided among `count` candidates."""
    return (f"finalists: the best {count} by rank_combined trained briefly; successive halving by training speed, "
            "the last survivors decided by the log-rank sum of training speed and rank_combined")


def _run_finalists(config: SearchConfig, space: SearchSpace, pool: Sequence[Individual], scores: np.ndarray,
                   chosen: list[int], progress: bool = False, dataset: Dataset | None = None
                   ) -> tuple[int, pd.DataFrame]:
    """(index in pool of the winner, finalists.csv) of the short training of the `chosen` best genotypes."""
    settings = config.finalist_config()
    device = resolve_device(config.device)
    if dataset is None:
        dataset = open_data(config.data, config.image_size)
    positions = stream_positions(dataset.train_size, settings)  # only what the stream reads, in its order
    images = uint8_images(dataset, positions, "train", device)
    labels = torch.from_numpy(dataset.train_labels[positions].astype(np.int64)).to(device)
    total = dataclasses.replace(settings, top=len(chosen)).steps()
    log.info("finalists: the best %d by %s train %d steps at most (%d steps in all, width %s)", len(chosen),
             config.aggregate, settings.rungs[-1], total, settings.C or "the space's")
    bar = FinalistsBar(total, len(chosen), settings.rungs, enabled=progress)

    def on_rung(number: int, alive: int) -> None:
        log.info("finalists: rung %d done, %d trained %d steps", number + 1, alive, settings.rungs[number])
        bar.rung_done(number, alive)

    try:
        table = successive_halving(space, [pool[i].genotype for i in chosen], images, labels, settings, device,
                                   on_rung=on_rung, prior=[float(scores[i]) for i in chosen], stats=dataset.stats,
                                   num_classes=dataset.num_classes, on_step=bar.step, ordered=True)
    finally:
        bar.close()
    table.insert(0, "id", [pool[i].id for i in chosen])
    table.insert(2, "rank_combined", [float(scores[i]) for i in chosen])
    return chosen[int(np.flatnonzero(table["winner"].to_numpy())[0])], table


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
