"""Genetic operators on genotype strings: uniform crossover, five small mutations, self-adapted strategy.

Every operator takes a genotype string and returns a valid genotype string of the same space; the RNG is
always passed in (pymoo's `core/crossover.py`, `core/mutation.py` shape, on strings instead of arrays).

Mutations (`MUTATIONS`, applied in this order, each with its own probability):

- add_channels   grow one stage's width by a self-adapted step (spaces with widths, i.e. DARTS; capped at 99)
- reduce_width   shrink one stage's width by the same step (spaces with widths; floored at 10)
- swap_blocks    exchange two edges of one cell (DARTS: op and input, between nodes that can both read
                 the inputs; NB201: the ops of any two edges)
- change_op      give one edge a different op
- rewire         DARTS: point one edge at a different input node; NB201 (inputs are fixed): move ops
                 between two edges into the same node, i.e. swap their ops

How an edge is swapped, re-opped or rewired, and what a width is, belongs to the space (`SearchSpace.swap_edges`,
`change_op`, `rewire`, `stage_widths`, `with_stage_width`); the operators here add the self-adapted strategy.

Self-adaptation (evolution-strategy style; Schwefel 1977, Baeck & Schuetz 1996). Each individual carries
`StrategyParams`: a probability per mutation and, in the DARTS space, a channel step size. A child first
inherits the intermediate recombination of its parents' parameters (geometric mean of step sizes, mean
log-odds of probabilities), then perturbs them log-normally *before* they are used on its own genotype::

    z0 ~ N(0, 1) shared, z_i ~ N(0, 1) per parameter, n = number of strategy parameters
    tau_global = c / sqrt(2 n),   tau_local = c / sqrt(2 sqrt(n))          (c = learning_rate, default 1)
    step'   = step * exp(tau_global z0 + tau_local z_i)                   (log-normal)
    odds'   = odds * exp(tau_global z0 + tau_local z_i),  odds = p / (1 - p)  (log-normal on the odds,
                                                                           keeps p in (0, 1))

then clips to `STRATEGY_BOUNDS`. Settings that produce surviving children survive with them, so they spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from fne.errors import ConfigError, GenotypeError
from fne.genotopheno.spaces import SearchSpace
from fne.registry import Registry

Mutation = Callable[[SearchSpace, str, np.random.Generator, "StrategyParams"], str]
MUTATIONS: Registry[Mutation] = Registry("mutation")
# Probabilities never reach 0 or 1 exactly, so a setting can always recover; steps stay in a useful range.
STRATEGY_BOUNDS = {"probability": (0.01, 0.99), "width_step": (1.0, 40.0)}


def register_mutation(name: str, *, needs_widths: bool = False) -> Callable[[Mutation], Mutation]:
    """Decorator: add a mutation `(space, genotype, rng, strategy) -> genotype` under `name`; refuses duplicates.

    needs_widths=True: it changes stage widths, so it applies only to spaces whose genotypes carry them.
    """
    return MUTATIONS.register(name, needs_widths=needs_widths)


def mutation_names(space: SearchSpace) -> tuple[str, ...]:
    """The mutations that apply to a space, in application order."""
    return tuple(name for name in MUTATIONS if space.has_widths or not MUTATIONS.meta(name).get("needs_widths"))


@dataclass(frozen=True)
class StrategyParams:
    """One individual's mutation settings: a probability per mutation and the channel step (None if no widths)."""

    probabilities: tuple[tuple[str, float], ...]
    width_step: float | None = None

    def __post_init__(self) -> None:
        low, high = STRATEGY_BOUNDS["probability"]
        for name, p in self.probabilities:
            if name not in MUTATIONS:
                raise ConfigError(f"strategy names unknown mutation {name!r}; known: {', '.join(MUTATIONS)}")
            if not low <= p <= high:
                raise ConfigError(f"strategy probability of {name} is {p}, expected {low}..{high}")
        if self.width_step is not None:
            low, high = STRATEGY_BOUNDS["width_step"]
            if not low <= self.width_step <= high:
                raise ConfigError(f"strategy width_step is {self.width_step}, expected {low}..{high}")

    def probability(self, name: str) -> float:
        """The probability of mutation `name` (0 when this individual does not carry it)."""
        return dict(self.probabilities).get(name, 0.0)

    def as_columns(self) -> dict[str, float]:
        """Flat `strategy_*` columns for history.csv (`strategy_p_<mutation>`, `strategy_width_step`)."""
        columns = {f"strategy_p_{name}": p for name, p in self.probabilities}
        if self.width_step is not None:
            columns["strategy_width_step"] = self.width_step
        return columns

    @classmethod
    def from_columns(cls, row: dict) -> StrategyParams:
        """Inverse of `as_columns` (extra keys ignored, NaN step read as no step)."""
        probabilities = tuple((key[len("strategy_p_"):], float(value)) for key, value in row.items()
                              if key.startswith("strategy_p_") and not _is_nan(value))
        step = row.get("strategy_width_step")
        return cls(probabilities, None if step is None or _is_nan(step) else float(step))

    def __len__(self) -> int:
        return len(self.probabilities) + (self.width_step is not None)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def initial_strategy(space: SearchSpace, probability: float = 0.3, width_step: float = 8.0) -> StrategyParams:
    """The strategy every initial individual starts from: the same probability for each applicable mutation."""
    return StrategyParams(tuple((name, probability) for name in mutation_names(space)),
                          width_step if space.has_widths else None)


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _clip(value: float, bounds: tuple[float, float]) -> float:
    return min(max(value, bounds[0]), bounds[1])


def recombine_strategy(a: StrategyParams, b: StrategyParams) -> StrategyParams:
    """Intermediate recombination: geometric mean of steps, mean log-odds of probabilities (ES practice)."""
    if [name for name, _ in a.probabilities] != [name for name, _ in b.probabilities]:
        raise ConfigError("cannot recombine strategies over different mutation sets")
    probabilities = tuple((name, _sigmoid((_logit(p) + _logit(q)) / 2.0))
                          for (name, p), (_, q) in zip(a.probabilities, b.probabilities, strict=True))
    step = None if a.width_step is None or b.width_step is None else math.sqrt(a.width_step * b.width_step)
    return StrategyParams(probabilities, step)


def self_adapt(strategy: StrategyParams, rng: np.random.Generator, learning_rate: float = 1.0) -> StrategyParams:
    """Log-normal perturbation of every strategy parameter (rule in the module docstring)."""
    n = len(strategy)
    tau_global = learning_rate / math.sqrt(2.0 * n)
    tau_local = learning_rate / math.sqrt(2.0 * math.sqrt(n))
    shared = tau_global * float(rng.standard_normal())
    local = rng.standard_normal(n)
    bounds = STRATEGY_BOUNDS["probability"]
    probabilities = tuple(
        (name, _clip(_sigmoid(_logit(p) + shared + tau_local * float(local[i])), bounds))
        for i, (name, p) in enumerate(strategy.probabilities))
    step = strategy.width_step
    if step is not None:
        step = _clip(step * math.exp(shared + tau_local * float(local[-1])), STRATEGY_BOUNDS["width_step"])
    return StrategyParams(probabilities, step)


def crossover(space: SearchSpace, a: str, b: str, rng: np.random.Generator) -> str:
    """Uniform crossover: the child's i-th character is parent a's or parent b's i-th character, 50/50."""
    a, b = space.canonical(a), space.canonical(b)
    if len(a) != len(b):
        raise GenotypeError(f"crossover needs genotypes of the same shape; got {a!r} and {b!r}")
    take_a = rng.random(len(a)) < 0.5
    return space.canonical("".join(x if keep else y for x, y, keep in zip(a, b, take_a, strict=True)))


def mutate(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Apply each applicable mutation with its probability from `strategy`, in `MUTATIONS` order."""
    for name in mutation_names(space):
        if rng.random() < strategy.probability(name):
            genotype = MUTATIONS[name](space, genotype, rng, strategy)
    return genotype


def breed(space: SearchSpace, parents: Sequence[tuple[str, StrategyParams]], rng: np.random.Generator,
          crossover_probability: float = 0.5, learning_rate: float = 1.0) -> tuple[str, StrategyParams]:
    """One child from two parents: recombine + self-adapt the strategy, then crossover + mutate the genotype."""
    (a, strategy_a), (b, strategy_b) = parents
    strategy = self_adapt(recombine_strategy(strategy_a, strategy_b), rng, learning_rate)
    child = crossover(space, a, b, rng) if rng.random() < crossover_probability else space.canonical(a)
    return mutate(space, child, rng, strategy), strategy


# ---- the mutations: strategy semantics here, what changes in the genotype is the space's (search_space.py) ----
def _width_delta(rng: np.random.Generator, strategy: StrategyParams) -> int:
    step = strategy.width_step if strategy.width_step is not None else 8.0
    return max(1, round(abs(float(rng.standard_normal())) * step))


def _shift_width(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams,
                 sign: int) -> str:
    """Move one random stage's width by sign * |N(0, 1)| * width_step channels (the space clamps it)."""
    widths = space.stage_widths(genotype)
    if not widths:
        return space.canonical(genotype)
    stage = int(rng.integers(len(widths)))
    return space.with_stage_width(genotype, stage, widths[stage] + sign * _width_delta(rng, strategy))


@register_mutation("add_channels", needs_widths=True)
def add_channels(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Grow one random stage's width by |N(0, 1)| * width_step channels (at least 1, at most 99)."""
    return _shift_width(space, genotype, rng, strategy, +1)


@register_mutation("reduce_width", needs_widths=True)
def reduce_width(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Shrink one random stage's width by |N(0, 1)| * width_step channels (at least 1, never below 10)."""
    return _shift_width(space, genotype, rng, strategy, -1)


@register_mutation("swap_blocks")
def swap_blocks(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Exchange two edges: DARTS edges of different nodes that can read each other's inputs; else two ops."""
    return space.swap_edges(genotype, rng)


@register_mutation("change_op")
def change_op(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Replace the op of one random edge by a different op of the space."""
    return space.change_op(genotype, rng)


@register_mutation("rewire")
def rewire(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """DARTS: move one edge to another input node. Fixed-input spaces (NB201): swap two ops into one node."""
    return space.rewire(genotype, rng)
