"""Genetic operators on genotype strings: uniform crossover, five small mutations, self-adapted strategy.

Every operator takes a genotype string and returns a valid genotype string of the same space; the RNG is
always passed in (pymoo's `core/crossover.py`, `core/mutation.py` shape, on strings instead of arrays).

Mutations (`MUTATIONS`, applied in this order, each with its own probability):

- add_channels   grow one stage's width by a self-adapted step (DARTS space only, capped at 99)
- reduce_width   shrink one stage's width by the same step (DARTS space only, floored at 10)
- swap_blocks    exchange two edges of one cell (DARTS: op and input, between nodes that can both read
                 the inputs; NB201: the ops of any two edges)
- change_op      give one edge a different op
- rewire         DARTS: point one edge at a different input node; NB201 (inputs are fixed): move ops
                 between two edges into the same node, i.e. swap their ops

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
from fne.genotopheno.genotype import Cell, Edge, Genotype
from fne.genotopheno.ops import DARTS_OPS
from fne.genotopheno.spaces import DartsSpace, SearchSpace

Mutation = Callable[[SearchSpace, str, np.random.Generator, "StrategyParams"], str]
MUTATIONS: dict[str, Mutation] = {}
WIDTH_MUTATIONS = ("add_channels", "reduce_width")
# Probabilities never reach 0 or 1 exactly, so a setting can always recover; steps stay in a useful range.
STRATEGY_BOUNDS = {"probability": (0.01, 0.99), "width_step": (1.0, 40.0)}


def register_mutation(name: str) -> Callable[[Mutation], Mutation]:
    """Decorator: add a mutation `(space, genotype, rng, strategy) -> genotype` under `name`; refuses duplicates."""

    def decorate(function: Mutation) -> Mutation:
        if name in MUTATIONS:
            raise ValueError(f"mutation {name!r} is already registered")
        MUTATIONS[name] = function
        return function

    return decorate


def has_widths(space: SearchSpace) -> bool:
    """True when the space's genotypes carry channel widths (the DARTS space), so width mutations apply."""
    return isinstance(space, DartsSpace)


def mutation_names(space: SearchSpace) -> tuple[str, ...]:
    """The mutations that apply to a space, in application order."""
    return tuple(name for name in MUTATIONS if has_widths(space) or name not in WIDTH_MUTATIONS)


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
                          width_step if has_widths(space) else None)


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


# ---- DARTS-space mutations work on the Genotype object ------------------------------------------------

def _width_delta(rng: np.random.Generator, strategy: StrategyParams) -> int:
    step = strategy.width_step if strategy.width_step is not None else 8.0
    return max(1, round(abs(float(rng.standard_normal())) * step))


def _with_widths(genotype: Genotype, stage: int, width: int) -> Genotype:
    widths = list(genotype.widths)
    widths[stage] = width
    return Genotype(genotype.normal, genotype.reduce, tuple(widths), genotype.cells_per_stage)


def _edges(cell: Cell) -> list[Edge]:
    return [edge for node in cell.nodes for edge in node]


def _cell_of(edges: Sequence[Edge]) -> Cell:
    return Cell(tuple((edges[2 * i], edges[2 * i + 1]) for i in range(len(edges) // 2)))


def _edit_cell(genotype: Genotype, rng: np.random.Generator,
               edit: Callable[[list[Edge], np.random.Generator], list[Edge]]) -> Genotype:
    """Apply `edit` to the edge list of the normal or the reduction cell (50/50)."""
    if rng.random() < 0.5:
        return Genotype(_cell_of(edit(_edges(genotype.normal), rng)), genotype.reduce, genotype.widths,
                        genotype.cells_per_stage)
    return Genotype(genotype.normal, _cell_of(edit(_edges(genotype.reduce), rng)), genotype.widths,
                    genotype.cells_per_stage)


def _darts_swap(edges: list[Edge], rng: np.random.Generator) -> list[Edge]:
    # Edge e belongs to node e // 2, which may read inputs 0..node + 1; only pairs that stay legal move.
    pairs = [(i, j) for i in range(len(edges)) for j in range(i + 1, len(edges))
             if i // 2 != j // 2 and edges[i] != edges[j]
             and edges[j].input <= i // 2 + 1 and edges[i].input <= j // 2 + 1]
    if not pairs:
        return edges
    i, j = pairs[int(rng.integers(len(pairs)))]
    edges[i], edges[j] = edges[j], edges[i]
    return edges


def _darts_change_op(edges: list[Edge], rng: np.random.Generator) -> list[Edge]:
    index = int(rng.integers(len(edges)))
    others = [name for name in DARTS_OPS.names if name != edges[index].op]
    edges[index] = Edge(others[int(rng.integers(len(others)))], edges[index].input)
    return edges


def _darts_rewire(edges: list[Edge], rng: np.random.Generator) -> list[Edge]:
    index = int(rng.integers(len(edges)))
    node = index // 2
    others = [j for j in range(node + 2) if j != edges[index].input]
    edges[index] = Edge(edges[index].op, others[int(rng.integers(len(others)))])
    return edges


# ---- other spaces (NB201): op characters at fixed positions, grouped into nodes by the separators ------

def _op_groups(space: SearchSpace) -> list[list[int]]:
    """Positions of op characters, grouped per node: a one-character alphabet is a separator between nodes."""
    groups: list[list[int]] = [[]]
    for index, alphabet in enumerate(space.alphabets()):
        if len(alphabet) == 1:
            if groups[-1]:
                groups.append([])
        else:
            groups[-1].append(index)
    return [group for group in groups if group]


def _swap_chars(text: str, candidates: Sequence[tuple[int, int]], rng: np.random.Generator) -> str:
    pairs = [(i, j) for i, j in candidates if text[i] != text[j]]
    if not pairs:
        return text
    i, j = pairs[int(rng.integers(len(pairs)))]
    chars = list(text)
    chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def _shift_width(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams,
                 sign: int) -> str:
    """Move one random stage's width by sign * |N(0, 1)| * width_step channels, kept within 10..99."""
    if not has_widths(space):
        return space.canonical(genotype)
    parsed = space.parse(genotype)
    stage = int(rng.integers(len(parsed.widths)))
    width = min(99, max(10, parsed.widths[stage] + sign * _width_delta(rng, strategy)))
    return space.format(_with_widths(parsed, stage, width))


@register_mutation("add_channels")
def add_channels(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Grow one random stage's width by |N(0, 1)| * width_step channels (at least 1, at most 99)."""
    return _shift_width(space, genotype, rng, strategy, +1)


@register_mutation("reduce_width")
def reduce_width(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Shrink one random stage's width by |N(0, 1)| * width_step channels (at least 1, never below 10)."""
    return _shift_width(space, genotype, rng, strategy, -1)


@register_mutation("swap_blocks")
def swap_blocks(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Exchange two edges: DARTS edges of different nodes that can read each other's inputs; else two ops."""
    if isinstance(space, DartsSpace):
        return space.format(_edit_cell(space.parse(genotype), rng, _darts_swap))
    positions = [i for group in _op_groups(space) for i in group]
    text = space.canonical(genotype)
    return space.canonical(_swap_chars(text, [(i, j) for i in positions for j in positions if i < j], rng))


@register_mutation("change_op")
def change_op(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """Replace the op of one random edge by a different op of the space."""
    if isinstance(space, DartsSpace):
        return space.format(_edit_cell(space.parse(genotype), rng, _darts_change_op))
    text = space.canonical(genotype)
    alphabets = space.alphabets()
    positions = [i for group in _op_groups(space) for i in group]
    index = positions[int(rng.integers(len(positions)))]
    others = [c for c in alphabets[index] if c != text[index]]
    return space.canonical(text[:index] + others[int(rng.integers(len(others)))] + text[index + 1:])


@register_mutation("rewire")
def rewire(space: SearchSpace, genotype: str, rng: np.random.Generator, strategy: StrategyParams) -> str:
    """DARTS: move one edge to another input node. Fixed-input spaces (NB201): swap two ops into one node."""
    if isinstance(space, DartsSpace):
        return space.format(_edit_cell(space.parse(genotype), rng, _darts_rewire))
    text = space.canonical(genotype)
    pairs = [(i, j) for group in _op_groups(space) for i in group for j in group if i < j]
    return space.canonical(_swap_chars(text, pairs, rng))
