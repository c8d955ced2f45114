"""The settings of a search (`SearchConfig`), their config.json form, and the seeds derived from the run seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fne.config_meta import cli, data_field, image_size_field
from fne.deploy.latency_parts import LATENCY_LAYOUTS
from fne.errors import CheckpointError, ConfigError
from fne.evolution.loop import LoopConfig
from fne.evolution.seeds import derived_seed
from fne.genotopheno.spaces import SPACES
from fne.run import rundir
from fne.scoring.aggregation import AGGREGATES
from fne.scoring.fitness import DEFAULT_HEURISTICS, HEURISTICS, FitnessConfig
from fne.threads import default_threads
from fne.training.finalists import FINALIST_DTYPES, FinalistConfig
from fne.training.tournament import TOURNAMENT_JUDGES, TournamentConfig
from fne.version import __version__

EXTRA_OBJECTIVES = ("params", "flops", "log_latency")  # log_latency: fne/deploy/latency_search.py
FINAL_PICKS = ("population", "evaluated")
FINALIST_SEED_PATH = (2**31 - 1,)  # derived_seed path of the finalists' training: no generation number reaches it
# Pareto objectives of the default scores: three families, each the rank aggregate of its members within the
# pool (activation statistics of one forward, gradient statistics, size). Seven objectives of their own
# leave 32% of a pool of 40 non-dominated, the three groups 10% (report/heuristics/aggregation.md): the
# groups keep selection pressure while still rewarding different strengths.
DEFAULT_OBJECTIVES = ("az_expressivity+az_progressivity+meco+swap", "az_trainability+zico", "log_flops")
# The loop's size and scores when neither the config nor the space (SearchSpace.search_defaults) sets them.
# Tournaments: the supernet's alpha with the heuristic prior w = 2 (on 20 random NB201 groups of 4 the 30-step
# tournament alone picked the best 30% of the time, with the prior 70% from w = 2 on, the prior alone 70%;
# experiments/results/tournament_prior.md); no tie band (alpha differences are not compared across machines).
LOOP_DEFAULTS = {"population": 16, "offspring": 16, "generations": 8, "tournament_every": 3, "finalists": 0,
                 "heuristics": DEFAULT_HEURISTICS, "pareto_objectives": DEFAULT_OBJECTIVES,
                 "tournament_judge": "alpha", "tournament_prior": 2.0, "tournament_tie_band": 0.0}
# What runs whose config.json predates a setting did, so that they resume as they started.
SETTINGS_BEFORE = {"finalists": 0, "tournament_judge": "alpha", "tournament_prior": 2.0, "tournament_tie_band": 0.0}


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a search; written to config.json (defaults: a <= 15 min CPU run)."""

    space: str = field(default="darts", metadata=cli(
        "Search space: the DARTS cell space with per-stage widths, or NAS-Bench-201's 15,625 cells.",
        choices=SPACES.names))
    population: int | None = field(default=None, metadata=cli(
        "mu: individuals that survive each generation.", min=2, per_space=True))
    offspring: int | None = field(default=None, metadata=cli(
        "lambda: new children bred and scored per generation (parents and children compete).", min=1,
        per_space=True))
    generations: int | None = field(default=None, metadata=cli(
        "Generations after the initial population.", min=0, per_space=True))
    tournament_every: int | None = field(default=None, metadata=cli(
        "Every k-th generation selects the children by DARTS tournaments instead of Pareto survival (0: never).",
        min=0, per_space=True))
    tournament_size: int = field(default=4, metadata=cli(
        "k: children in one tournament; the one its judge values most (with the prior) survives.", min=2))
    tournament_steps: int | None = field(default=None, metadata=cli(
        "Training steps of each tournament: the supernet's (first-order DARTS on real batches; the first third "
        "trains weights only), or each candidate's when judged by training speed.", min=1, per_space=True))
    tournament_C: int | None = field(default=None, metadata=cli(
        "Channels C of the tournament supernet's first stage (the candidates' cells compete at a common width).",
        flag="--tournament-width", min=1, per_space=True))
    tournament_batch_size: int | None = field(default=None, metadata=cli(
        "Images per tournament training step.", min=1, per_space=True))
    tournament_judge: str | None = field(default=None, metadata=cli(
        "What decides a tournament: alpha (the candidates mixed in one supernet by softmax(alpha), first-order "
        "DARTS) or training_speed (each candidate trained alone on the same batches, judged by its mean "
        "training loss).", choices=TOURNAMENT_JUDGES, per_space=True))
    tournament_prior: float | None = field(default=None, metadata=cli(
        "Weight w of the heuristic prior in a tournament: the winner maximises its judge's log-value - w * r, r "
        "in [0, 1] its rank by rank_combined in its group (0: the judge alone).", min=0.0, per_space=True))
    tournament_tie_band: float | None = field(default=None, metadata=cli(
        "Differences of the judge's value within this band are ties, decided by rank_combined (the value's "
        "noise across CPUs and thread counts).", min=0.0, per_space=True))
    tournament_images: int = field(default=2000, metadata=cli(
        "Images drawn from --data for the tournaments, split half/half into training and held-out "
        "(the shipped sample always gives its 1,000).", min=2))
    batch_size: int = field(default=64, metadata=cli("Images per heuristic probe.", min=2))
    seed: int = field(default=0, metadata=cli("Run seed: the same seed gives the same run, also across --resume.",
                                              min=0))
    device: str = field(default="auto", metadata=cli("auto (CUDA when available), cpu, cuda or cuda:N.",
                                                     device=True))
    data: str | None = data_field()  # `--data` (alias `--data-dir`); config.json files before it say data_dir
    image_size: int = image_size_field()
    ground_truth: str | None = field(default=None, metadata=cli(
        "CSV with arch_str,cifar10_test for spaces that support it (NB201, e.g. "
        "../shared/data/nb201/nb201_cifar10.csv); true accuracies are recorded in the history, never used for "
        "selection.", path=True))
    ground_truth_sha256: str | None = None  # of the ground-truth file when the run started (resume warns if changed)
    heuristics: tuple[str, ...] | None = field(default=None, metadata=cli(
        "Comma-separated training-free scores (registered heuristics, all minimised) that survival and "
        "rank_combined use.", choices=None, per_space=True))
    pareto_objectives: tuple[str, ...] | None = field(default=None, metadata=cli(
        "Comma-separated Pareto objectives; an objective a+b+c is the rank aggregate of those heuristics within "
        "each pool. With --heuristics other than the space's defaults and no objectives given, every heuristic "
        "is its own objective.", per_space=True))
    extra_objectives: tuple[str, ...] = field(default=(), metadata=cli(
        "Also minimise this (repeatable) in Pareto selection, next to the heuristics.", flag="--extra-objective",
        multiple=True, choices=("params", "flops")))
    crossover_probability: float = field(default=0.5, metadata=cli(
        "Probability that a child is a character-wise crossover of its two parents.", min=0.0, max=1.0))
    initial_mutation_probability: float = field(default=0.3, metadata=cli(
        "Starting probability of each mutation (then self-adapted per individual).", min=0.01, max=0.99))
    initial_width_step: float = field(default=8.0, metadata=cli(
        "Starting channel step of the width mutations (then self-adapted).", min=1.0, max=40.0))
    strategy_learning_rate: float = field(default=1.0, metadata=cli(
        "Scale c of the log-normal self-adaptation rates tau = c / sqrt(2n), tau' = c / sqrt(2 sqrt(n)).",
        min=0.0))
    aggregate: str = field(default="az_nas", metadata=cli(
        "How rank_combined aggregates the heuristics' ranks: az_nas (AZ-NAS's sum of log ranks) or linear "
        "(TE-NAS's rank sum).", choices=lambda: tuple(AGGREGATES)))
    max_params: int | None = field(default=None, metadata=cli(
        "Size budget: no candidate whose scored network has more parameters is bred (0: none).", min=0,
        per_space=True))
    max_flops: int | None = field(default=None, metadata=cli(
        "Size budget in FLOPs of the scored network (0: none).", min=0, per_space=True))
    max_latency_ms: float | None = field(default=None, metadata=cli(
        "Latency budget: no candidate whose own network's batch-1 latency on --latency-device, predicted from "
        "that device's `fne latency-table`, exceeds this many ms is bred (0: none).", min=0.0))
    latency_device: str = field(default="cpu", metadata=cli(
        "Device whose latency table predicts --max-latency-ms and the log_latency objective.", device=True))
    latency_threads: int | None = field(default=None, metadata=cli(
        "Thread count of that latency table (default: what `fne latency-table` uses, FNE_THREADS else the "
        "usable cores).", min=1))
    final_pick: str = field(default="evaluated", metadata=cli(
        "The final best is the smallest rank_combined among the final population or everything evaluated.",
        choices=FINAL_PICKS))
    finalists: int | None = field(default=None, metadata=cli(
        "The final pick's short list: this many best candidates by rank_combined train briefly (successive "
        "halving by mean training loss); the last survivors are decided by training speed and rank_combined "
        "together (0: off, the pick is the smallest rank_combined).", min=0, per_space=True))
    finalist_steps: int = field(default=100, metadata=cli(
        "Training steps of the finalists still in contention at the end; the field halves after 1/8, 1/4 and "
        "1/2 of them.", min=8))
    finalist_C: int | None = field(default=None, metadata=cli(
        "Channels C of the finalists' training copies (default: the space's; NB201 trains them at 8).",
        flag="--finalist-width", min=1, per_space=True))
    finalist_dtype: str = field(default="float64", metadata=cli(
        "Precision of the finalists' training: in float64 rounding moves the training losses they are ranked by "
        "far less, so the pick holds across machines and thread counts; float32 is about 2x faster, but its pick "
        "can change with the machine (docs/search.md).",
        flag="--finalist-precision", choices=FINALIST_DTYPES))

    def __post_init__(self) -> None:
        space = SPACES[self.space]  # ConfigError naming the known spaces
        defaults = {**LOOP_DEFAULTS, **space.tournament_defaults, **space.search_defaults}
        if self.pareto_objectives is None:  # the space's groups are of the space's scores
            own = self.heuristics is None or tuple(self.heuristics) == tuple(defaults["heuristics"])
            object.__setattr__(self, "pareto_objectives", defaults["pareto_objectives"] if own else ())
        for name, value in defaults.items():
            if getattr(self, name) is None:  # resolved here, so config.json records the value used
                object.__setattr__(self, name, value)
        object.__setattr__(self, "heuristics", tuple(self.heuristics))
        object.__setattr__(self, "extra_objectives", tuple(self.extra_objectives))
        object.__setattr__(self, "pareto_objectives", tuple(self.pareto_objectives))
        grouped = [name for group in self.pareto_objectives for name in group.split("+")]
        if any(name not in self.heuristics for name in grouped):
            raise ConfigError(f"pareto_objectives {', '.join(self.pareto_objectives)}: every member must be one of "
                              f"the heuristics {', '.join(self.heuristics)}")
        self._check_tournaments()
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
        if self.seed < 0:
            raise ConfigError(f"seed={self.seed} must be a non-negative integer")
        if not self.heuristics or any(name not in HEURISTICS for name in self.heuristics):
            raise ConfigError(f"heuristics {', '.join(self.heuristics) or '(none)'}: name one or more of the "
                              f"registered {', '.join(HEURISTICS)}")
        unknown = [name for name in self.extra_objectives if name not in EXTRA_OBJECTIVES]
        if unknown:
            raise ConfigError(f"unknown extra objective(s) {unknown}; choose from {', '.join(EXTRA_OBJECTIVES)}")
        if not 0.0 <= self.crossover_probability <= 1.0:
            raise ConfigError(f"crossover_probability={self.crossover_probability} must be in 0..1")
        for name in ("max_params", "max_flops"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be 0 (no budget) or positive")
        choices_of = {"aggregate": AGGREGATES, "final_pick": FINAL_PICKS, "finalist_dtype": FINALIST_DTYPES}
        for name, choices in choices_of.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {', '.join(choices)}")
        if self.finalists < 0 or self.finalist_steps < 8:
            raise ConfigError(f"finalists={self.finalists} must be 0 (off) or positive and finalist_steps="
                              f"{self.finalist_steps} at least 8")
        if self.image_size != 0 and not 4 <= self.image_size <= 4096:
            raise ConfigError(f"image_size={self.image_size}: expected 0 (the dataset's own size) or 4..4096 pixels")
        self._check_latency()
        if self.ground_truth is not None and not space.supports_ground_truth:
            known = ", ".join(name for name in SPACES if SPACES[name].supports_ground_truth)
            raise ConfigError(f"--ground-truth is for --space {known} only (got --space {self.space})")

    def _check_latency(self) -> None:
        """A latency budget or objective needs a space with a latency layout; resolve the table's threads."""
        if self.max_latency_ms is not None and self.max_latency_ms < 0:
            raise ConfigError(f"max_latency_ms={self.max_latency_ms} must be 0 (no budget) or positive")
        if not (self.max_latency_ms or "log_latency" in self.extra_objectives):
            return
        if self.space not in LATENCY_LAYOUTS:
            raise ConfigError(f"--max-latency-ms and log_latency need a space with a latency layout "
                              f"({', '.join(LATENCY_LAYOUTS)}); {self.space} has none")
        if self.latency_threads is None:  # resolved here, so config.json records the table it predicted from
            object.__setattr__(self, "latency_threads", default_threads())
        if self.latency_threads < 1:
            raise ConfigError(f"latency_threads={self.latency_threads} must be at least 1")

    def _check_tournaments(self) -> None:
        """The tournament settings' ranges (after the space's defaults are resolved)."""
        if self.tournament_prior < 0 or self.tournament_tie_band < 0:
            raise ConfigError(f"tournament_prior={self.tournament_prior} and tournament_tie_band="
                              f"{self.tournament_tie_band} must not be negative")
        if self.tournament_judge not in TOURNAMENT_JUDGES:
            raise ConfigError(f"tournament_judge={self.tournament_judge!r} is not one of "
                              f"{', '.join(TOURNAMENT_JUDGES)}")
        if self.tournament_size < 2:
            raise ConfigError(f"tournament_size={self.tournament_size} must be at least 2")
        if self.tournament_every and self.offspring < 2:
            raise ConfigError(f"offspring={self.offspring}: tournaments need at least 2 children per generation")

    @property
    def objectives(self) -> tuple[str, ...]:
        """What Pareto survival minimises: the objectives (grouped or not), then any extra objectives."""
        return (*(self.pareto_objectives or self.heuristics), *self.extra_objectives)

    def ranking(self) -> Callable[[np.ndarray], np.ndarray]:
        """The aggregate of minimised scores (n, m) -> (n,), lower is better, that rank_combined reports."""
        return AGGREGATES[self.aggregate]

    def fitness_config(self, num_classes: int = 10) -> FitnessConfig:
        """How candidates are scored (networks with `num_classes` outputs: the dataset's classes)."""
        return FitnessConfig(batch_size=self.batch_size, seed=self.seed, device=self.device,
                             heuristics=self.heuristics, num_classes=num_classes)

    def finalist_config(self) -> FinalistConfig:
        """How the finalists train: rungs at 1/8, 1/4, 1/2 and all of finalist_steps, seeded by the run."""
        steps = self.finalist_steps
        return FinalistConfig(top=self.finalists, rungs=(steps // 8, steps // 4, steps // 2, steps),
                              C=self.finalist_C, seed=derived_seed(self.seed, *FINALIST_SEED_PATH),
                              dtype=self.finalist_dtype)

    def tournament_config(self) -> TournamentConfig:
        """How one DARTS tournament trains (a third of the steps are weight-only warm-up)."""
        return TournamentConfig(size=self.tournament_size, steps=self.tournament_steps,
                                warmup_steps=self.tournament_steps // 3, batch_size=self.tournament_batch_size,
                                C=self.tournament_C, judge=self.tournament_judge)

    def loop_config(self) -> LoopConfig:
        """The evolution loop's parameters."""
        return LoopConfig(space=self.space, seed=self.seed, population=self.population, offspring=self.offspring,
                          generations=self.generations, objectives=self.objectives, heuristics=self.heuristics,
                          tournament_every=self.tournament_every, crossover_probability=self.crossover_probability,
                          initial_mutation_probability=self.initial_mutation_probability,
                          initial_width_step=self.initial_width_step,
                          strategy_learning_rate=self.strategy_learning_rate, max_params=self.max_params,
                          max_flops=self.max_flops, max_latency_ms=self.max_latency_ms)


def run_config_dict(config: SearchConfig, dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    """config.json content: the resolved SearchConfig, the dataset's record (Dataset.describe), format, version
    and derived settings."""
    num_classes = 10 if dataset is None else dataset["num_classes"]
    return {"format": rundir.RUN_FORMAT, "format_version": rundir.FORMAT_VERSION, "fne_version": __version__,
            "space": config.space, "seed": config.seed, "heuristics": list(config.heuristics),
            "objectives": list(config.objectives), "search": _jsonable(asdict(config)),
            "fitness": _jsonable(asdict(config.fitness_config(num_classes))),
            "tournament": _jsonable(asdict(config.tournament_config())),
            "finalists": _jsonable(asdict(config.finalist_config())),
            **({} if dataset is None else {"dataset": dataset})}


def config_from_dict(data: dict[str, Any]) -> SearchConfig:
    """The SearchConfig saved in a run's config.json."""
    try:
        # Runs started before the finalists' stage existed pick by rank_combined alone, and resume that way;
        # runs started before the tournament's judge was a setting play alpha tournaments (SETTINGS_BEFORE).
        # Runs started before --data saved the dataset spec as data_dir.
        saved = dict(data["search"])
        if "data_dir" in saved:
            saved.setdefault("data", saved.pop("data_dir"))
        return SearchConfig(**{**SETTINGS_BEFORE, **saved})
    except (KeyError, TypeError) as error:
        raise CheckpointError(f"config.json does not hold a search config this fne understands ({error})") \
            from None


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}
