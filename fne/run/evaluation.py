"""How the search gets scores: the `Evaluator` protocol and its in-process implementation.

An evaluator turns genotype strings into one score row each, in input order, with the columns of
`fitness.score_genotypes` (genotype, one column per heuristic, params, flops, seconds, device, error).
The search loop only sees this protocol, so scoring can run in process (`InProcessEvaluator`), on a dask
cluster (`distributed.DaskEvaluator`) or, in tests, through a small scoring function (`FunctionEvaluator`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import pandas as pd
import torch

from fne.device import resolve_device
from fne.genotopheno.spaces import SearchSpace
from fne.scoring.fitness import DTYPES, FitnessConfig, score_genotypes


@runtime_checkable
class Evaluator(Protocol):
    """Anything that scores genotype strings: one row per genotype, same order, score_genotypes' columns."""

    chunk_size: int | None  # genotypes per evaluate() call the loop should send (None: all at once)

    def evaluate(self, genotypes: list[str]) -> pd.DataFrame:
        """Score rows of these genotypes, in input order."""
        ...

    def close(self) -> None:
        """Release what the evaluator holds (processes, a cluster connection)."""
        ...


class InProcessEvaluator:
    """Scores in this process with `score_genotypes` on a fixed image batch."""

    chunk_size = 1  # one genotype per call on the CPU, so a progress bar moves per network

    def __init__(self, space: SearchSpace, images: torch.Tensor, fitness_config: FitnessConfig,
                 progress: bool = False, labels: torch.Tensor | None = None):
        self.space = space
        # On the scoring device once, not once per call (score_genotypes' own move is then a no-op).
        device, dtype = resolve_device(fitness_config.device), DTYPES[fitness_config.dtype]
        self.images = images[:fitness_config.batch_size].to(device=device, dtype=dtype)
        self.labels = None if labels is None else labels[:fitness_config.batch_size].to(device, torch.long)
        # On a GPU, several genotypes a call so that score_genotypes builds the next while one is probed.
        self.chunk_size = 8 if device.type == "cuda" else 1
        self.fitness_config = fitness_config
        self.progress = progress

    def evaluate(self, genotypes: list[str]) -> pd.DataFrame:
        """Score rows of these genotypes, in input order."""
        return score_genotypes(self.space, list(genotypes), self.images, self.fitness_config, progress=self.progress,
                               labels=self.labels)

    def close(self) -> None:
        """Nothing to release."""


class FunctionEvaluator:
    """Scores with a plain function genotype -> {objective: value}; for tests and toy problems."""

    chunk_size = 1

    def __init__(self, score: Callable[[str], dict[str, float]], objectives: Sequence[str]):
        self.score = score
        self.objectives = tuple(objectives)

    def evaluate(self, genotypes: list[str]) -> pd.DataFrame:
        """Rows with the objectives from the function, params/flops -1 and no error."""
        rows = []
        for genotype in genotypes:
            start = time.perf_counter()
            values = self.score(genotype)
            rows.append({"genotype": genotype, **{name: float(values[name]) for name in self.objectives},
                         "params": -1, "flops": -1, "seconds": time.perf_counter() - start, "device": "cpu",
                         "error": ""})
        return pd.DataFrame(rows, columns=["genotype", *self.objectives, "params", "flops", "seconds", "device",
                                           "error"])

    def close(self) -> None:
        """Nothing to release."""
