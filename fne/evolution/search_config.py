"""The settings of a search (`SearchConfig`), their config.json form, and the seeds derived from the run seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fne.data.cifar10 import find_cifar10_dir
from fne.errors import CheckpointError, ConfigError, DataError
from fne.evolution import rundir
from fne.evolution.selection import rank_combined
from fne.evolution.tournament import TournamentConfig
from fne.genotopheno.spaces import SPACES
from fne.scoring.fitness import DEFAULT_HEURISTICS, FitnessConfig
from fne.version import __version__

EXTRA_OBJECTIVES = ("params", "flops")
FINAL_PICKS = ("population", "evaluated")


def linear_rank_sum(F: np.ndarray) -> np.ndarray:
    """TE-NAS's rank combination: the sum of each candidate's ranks (1 = best) over the score columns."""
    return rank_combined(F, None)


AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"linear": linear_rank_sum}


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a search; written to config.json (defaults: a <= 15 min CPU run)."""

    space: str = "darts"
    population: int = 16  # mu
    offspring: int = 16  # lambda
    generations: int = 8  # after the initial population (generation 0)
    tournament_every: int = 3  # every k-th generation selects by DARTS tournaments (0: never)
    tournament_size: int = 4
    tournament_steps: int | None = None  # None: the space's default (SearchSpace.tournament_defaults)
    tournament_C: int | None = None
    tournament_batch_size: int | None = None
    tournament_images: int = 2000  # drawn from --data-dir (the shipped sample always gives its 1,000)
    batch_size: int = 64  # images per heuristic probe
    seed: int = 0
    device: str = "auto"
    data_dir: str | None = None
    ground_truth: str | None = None
    ground_truth_sha256: str | None = None  # of the ground-truth file when the run started (resume warns if changed)
    heuristics: tuple[str, ...] = DEFAULT_HEURISTICS
    extra_objectives: tuple[str, ...] = ()  # "params" and/or "flops", minimised next to the heuristics
    crossover_probability: float = 0.5
    initial_mutation_probability: float = 0.3
    initial_width_step: float = 8.0
    strategy_learning_rate: float = 1.0
    aggregate: str = "linear"  # how rank_combined aggregates the heuristics' ranks (AGGREGATES)
    max_params: int | None = None  # size budget of the scored network (0: none; None: the space's default)
    max_flops: int | None = None
    final_pick: str = "population"  # the final best is ranked among the final "population" or everything "evaluated"

    def __post_init__(self) -> None:
        space = SPACES[self.space]  # ConfigError naming the known spaces
        for name, value in {**space.tournament_defaults, **space.search_defaults}.items():
            if getattr(self, name) is None:  # resolved here, so config.json records the value used
                object.__setattr__(self, name, value)
        object.__setattr__(self, "heuristics", tuple(self.heuristics))
        object.__setattr__(self, "extra_objectives", tuple(self.extra_objectives))
        positive = {"population": self.population, "offspring": self.offspring, "tournament_steps":
                    self.tournament_steps, "tournament_C": self.tournament_C, "tournament_batch_size":
                    self.tournament_batch_size, "tournament_images": self.tournament_images,
                    "batch_size": self.batch_size}
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"{name}={value} must be at least 1")
        if self.population < 2:
            raise ConfigError(f"population={self.population} must be at least 2")
        if self.generations < 0 or self.tournament_every < 0:
            raise ConfigError(f"generations={self.generations} and tournament_every={self.tournament_every} "
                              "must not be negative")
        if self.tournament_size < 2:
            raise ConfigError(f"tournament_size={self.tournament_size} must be at least 2")
        if self.tournament_every and self.offspring < 2:
            raise ConfigError(f"offspring={self.offspring}: tournaments need at least 2 children per generation")
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed} must be a non-negative integer")
        unknown = [name for name in self.extra_objectives if name not in EXTRA_OBJECTIVES]
        if unknown:
            raise ConfigError(f"unknown extra objective(s) {unknown}; choose from {', '.join(EXTRA_OBJECTIVES)}")
        if not 0.0 <= self.crossover_probability <= 1.0:
            raise ConfigError(f"crossover_probability={self.crossover_probability} must be in 0..1")
        for name in ("max_params", "max_flops"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be 0 (no budget) or positive")
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"aggregate={self.aggregate!r} is not one of {', '.join(AGGREGATES)}")
        if self.final_pick not in FINAL_PICKS:
            raise ConfigError(f"final_pick={self.final_pick!r} is not one of {', '.join(FINAL_PICKS)}")
        if self.ground_truth is not None and not space.supports_ground_truth:
            known = ", ".join(name for name in SPACES if SPACES[name].supports_ground_truth)
            raise ConfigError(f"--ground-truth is for --space {known} only (got --space {self.space})")

    @property
    def objectives(self) -> tuple[str, ...]:
        """The minimised columns that selection sees: the heuristics, then any extra objectives."""
        return (*self.heuristics, *self.extra_objectives)

    def ranking(self) -> Callable[[np.ndarray], np.ndarray]:
        """The aggregate of minimised scores (n, m) -> (n,), lower is better, that rank_combined reports."""
        return AGGREGATES[self.aggregate]

    def fitness_config(self) -> FitnessConfig:
        """How candidates are scored."""
        return FitnessConfig(batch_size=self.batch_size, seed=self.seed, device=self.device,
                             heuristics=self.heuristics)

    def tournament_config(self) -> TournamentConfig:
        """How one DARTS tournament trains (a third of the steps are weight-only warm-up)."""
        return TournamentConfig(size=self.tournament_size, steps=self.tournament_steps,
                                warmup_steps=self.tournament_steps // 3, batch_size=self.tournament_batch_size,
                                C=self.tournament_C)

    def is_tournament_generation(self, generation: int) -> bool:
        """True for generations that select by DARTS tournaments (every tournament_every-th, never 0)."""
        return bool(self.tournament_every) and generation > 0 and generation % self.tournament_every == 0


def generation_rng(seed: int, generation: int) -> np.random.Generator:
    """The only numpy Generator generation `generation` uses: a pure function of (seed, generation)."""
    return np.random.default_rng(np.random.SeedSequence([seed, generation]))


def derived_seed(seed: int, *path: int) -> int:
    """A 31-bit torch seed derived from the run seed and a path such as (generation, tournament)."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0] & 0x7FFFFFFF)


def run_config_dict(config: SearchConfig) -> dict[str, Any]:
    """config.json content: the resolved SearchConfig plus format, version and derived settings."""
    return {"format": rundir.RUN_FORMAT, "format_version": rundir.FORMAT_VERSION, "fne_version": __version__,
            "space": config.space, "seed": config.seed, "heuristics": list(config.heuristics),
            "objectives": list(config.objectives), "search": _jsonable(asdict(config)),
            "fitness": _jsonable(asdict(config.fitness_config())),
            "tournament": _jsonable(asdict(config.tournament_config()))}


def config_from_dict(data: dict[str, Any]) -> SearchConfig:
    """The SearchConfig saved in a run's config.json."""
    try:
        return SearchConfig(**data["search"])
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"config.json does not hold a search config this fne understands ({error})") \
            from None


def check_data_dir(data_dir: str) -> None:
    """DataError now, rather than after generation 0 started, when --data-dir holds no CIFAR-10 data."""
    if Path(data_dir).suffix == ".npz":
        if not Path(data_dir).is_file():
            raise DataError(f"--data-dir {data_dir}: no such .npz file")
        return
    find_cifar10_dir(data_dir)


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}
