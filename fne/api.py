"""fne's Python API, as plain as the CLI: a search in one call or driven by hand, and scoring a list of genotypes.

    import fne
    result = fne.search(space="nb201", generations=4, out="runs/nb201")     # SearchResult
    result.best["genotype"], result.history, result.population

    from fne.api import SearchConfig, default_evaluator, score_candidates
    config = SearchConfig(space="nb201")
    loop, evaluator = fne.search_loop(config), default_evaluator(config)           # ask/tell by hand
    while not loop.done:
        loop.tell(score_candidates(loop.ask(), evaluator, config.heuristics))

    table = fne.score(["C+CC+kCC", "n+nn+nnn"], space="nb201")  # one row per genotype, rank_combined as the search
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from fne.data.batches import probe_batch
from fne.data.source import DEFAULT_IMAGE_SIZE, open_data
from fne.evolution.loop import Evolution
from fne.genotopheno.spaces import get_space
from fne.run.config import AGGREGATES, SearchConfig
from fne.run.evaluation import Evaluator
from fne.run.search import SearchResult, build_evolution, default_evaluator, run_search, score_candidates
from fne.scoring.fitness import FitnessConfig, score_genotypes, space_heuristics

__all__ = ["SearchConfig", "default_evaluator", "score", "score_candidates", "search", "search_loop"]


def search(config: SearchConfig | None = None, out: str | Path | None = None, *, resume: str | Path | None = None,
           evaluator: Evaluator | None = None, progress: bool = False, **settings: Any) -> SearchResult:
    """Run (or resume) a search in one call; `settings` are SearchConfig fields, applied over `config`.

    `data=` names the dataset (fne.data.datasets.open_dataset's specs; `data_dir=` is its old name).
    """
    if "data_dir" in settings:
        settings.setdefault("data", settings.pop("data_dir"))
    if resume is None:
        config = replace(config, **settings) if config is not None else SearchConfig(**settings)
        if out is None:
            out = Path("runs") / f"{config.space}-seed{config.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        return run_search(config, out, evaluator=evaluator, progress=progress)
    return run_search(config or SearchConfig(), resume=resume, evaluator=evaluator, progress=progress)


def search_loop(config: SearchConfig) -> Evolution:
    """The search loop of a config, to drive with ask() / tell() (no run directory is written)."""
    return build_evolution(get_space(config.space), config)


# fne.score aggregates as the search does: SearchConfig's own default, not a second copy of it.
DEFAULT_AGGREGATE: str = next(f.default for f in fields(SearchConfig) if f.name == "aggregate")


def score(genotypes: Sequence[str], space: str = "nb201", *, data: str | Path | None = None,
          image_size: int = DEFAULT_IMAGE_SIZE, aggregate: str = DEFAULT_AGGREGATE, data_dir: str | Path | None = None,
          **fitness: Any) -> pd.DataFrame:
    """Score genotypes with the training-free heuristics: one row each, plus their `rank_combined` (lower = better).

    `data` is a dataset spec (default: the shipped sample; `data_dir` its old name) read at `image_size` (0: the
    dataset's own); `fitness` are FitnessConfig fields (heuristics, batch_size, seed, device, C, layers, ...).
    """
    fitness.setdefault("heuristics", space_heuristics(get_space(space)))  # the space's, as its search ranks
    dataset = open_data(None if data is None and data_dir is None else str(data or data_dir), image_size)
    config = FitnessConfig(**{"num_classes": dataset.num_classes, **fitness})
    images, labels = probe_batch(dataset, config.batch_size, config.seed)
    table = score_genotypes(get_space(space), list(genotypes), images, config, labels=labels)
    table["rank_combined"] = AGGREGATES[aggregate](table[list(config.heuristics)].to_numpy(dtype=float))
    return table
