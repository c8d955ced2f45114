"""The (mu + lambda) evolution as an ask/tell loop (pymoo `core/algorithm.py` shape): the caller scores.

    evolution = Evolution(space, LoopConfig(...), pareto, tournament, ranking)
    while not evolution.done:
        children = evolution.ask()                 # Candidates of the next generation
        outcome = evolution.tell(score(children))  # scored Individuals -> selection, next population

Generation 0 samples `population` distinct genotypes; every founder survives (survival only orders them).
Every later generation g draws its randomness from `seeds.generation_rng(seed, g)` only (ask breeds with it,
tell's survival goes on with the same generator), so a loop restored after generation g - 1 continues
exactly as the uninterrupted one. Children are never genotypes evaluated before: binary tournament on
front and crowding picks two parents; `operators.breed` recombines and self-adapts their strategy, then
crosses and mutates. Selection is the configured survival of the generation (`ParetoSurvival`, or
`TournamentSurvival` every `tournament_every`-th generation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fne.errors import ConfigError
from fne.evolution.individual import Candidate, Individual, objective_matrix_of, table_of
from fne.evolution.operators import breed, initial_strategy, self_adapt
from fne.evolution.seeds import generation_rng
from fne.evolution.selection import binary_tournament, survive
from fne.evolution.survival import Selection, Survival
from fne.genotopheno.spaces import SearchSpace

log = logging.getLogger(__name__)

Ranking = Callable[[np.ndarray], np.ndarray]  # (n, m) minimised scores -> (n,) aggregate, lower is better


@dataclass(frozen=True)
class LoopConfig:
    """The algorithm's parameters: sizes, seed, objectives and the operators' settings (a search's config
    gives them: `SearchConfig.loop_config()`)."""

    space: str  # the space's name, for messages
    seed: int
    population: int  # mu
    offspring: int  # lambda
    generations: int
    objectives: tuple[str, ...]  # what Pareto survival minimises (a+b groups aggregated within each pool)
    heuristics: tuple[str, ...]  # the scores whose aggregate is rank_combined
    tournament_every: int = 0
    crossover_probability: float = 0.5
    initial_mutation_probability: float = 0.3
    initial_width_step: float = 8.0
    strategy_learning_rate: float = 1.0
    max_params: int | None = None  # the size budget, for messages (the `fits` check enforces it)
    max_flops: int | None = None
    max_latency_ms: float | None = None  # the latency budget, for messages (fne/deploy/latency_search.py)

    def is_tournament_generation(self, generation: int) -> bool:
        """True for generations that select by tournaments (every tournament_every-th, never 0)."""
        return bool(self.tournament_every) and generation > 0 and generation % self.tournament_every == 0


@dataclass(frozen=True)
class Decorations:
    """Each member's place in the pool it was ranked in: Pareto front, crowding distance, aggregate."""

    front: np.ndarray
    crowding: np.ndarray
    rank_combined: np.ndarray

    def columns(self) -> dict[str, np.ndarray]:
        """As table columns."""
        return {"front": self.front, "crowding": self.crowding, "rank_combined": self.rank_combined}


def decorate(individuals: Sequence[Individual], objectives: Sequence[str], ranked: Sequence[str],
             ranking: Ranking) -> Decorations:
    """Fronts and crowding over `objectives`, and the aggregate of the `ranked` scores, within this pool."""
    survival = survive(objective_matrix_of(individuals, objectives, ranking), len(individuals))
    aggregate = ranking(objective_matrix_of(individuals, ranked)) if individuals else np.zeros(0)
    return Decorations(survival.front, survival.crowding, np.asarray(aggregate, dtype=float))


@dataclass(frozen=True)
class GenerationOutcome:
    """What `tell` decided: the scored children, the selection, and the next population."""

    generation: int
    children: tuple[Individual, ...]
    selection: Selection
    pool_decorations: Decorations  # over [*previous population, *children]
    population: tuple[Individual, ...]  # in selection order
    population_decorations: Decorations  # over the new population itself
    next_id: int  # the id the next generation's first child gets

    def history_rows(self, score_names: Sequence[str]) -> pd.DataFrame:
        """The children as history.csv rows: decorated within their pool, selected flag, selection kind."""
        offset = len(self.pool_decorations.front) - len(self.children)
        chosen = set(self.selection.selected)
        columns = {name: values[offset:] for name, values in self.pool_decorations.columns().items()}
        columns["selected"] = [offset + i in chosen for i in range(len(self.children))]
        columns["selection"] = [self.selection.kind] * len(self.children)
        return table_of(self.children, score_names, columns)

    def population_table(self, score_names: Sequence[str]) -> pd.DataFrame:
        """The new population as population.csv rows, decorated within itself."""
        return table_of(self.population, score_names, self.population_decorations.columns())


class Evolution:
    """The loop's state (generation, population, ids, genotypes seen) and its ask/tell steps."""

    def __init__(self, space: SearchSpace, config: LoopConfig, pareto: Survival, tournament: Survival | None,
                 ranking: Ranking, fits: Callable[[str], bool] | None = None):
        self.space = space
        self.fits = fits  # a size budget: genotypes it refuses are never asked for
        self.config = config
        self.pareto = pareto
        self.tournament = tournament
        self.ranking = ranking
        self.generation = -1
        self.next_id = 0
        self.population: tuple[Individual, ...] = ()
        self.decorations = Decorations(np.zeros(0, int), np.zeros(0), np.zeros(0))
        self.seen: set[str] = set()
        self._asked: tuple[int, np.random.Generator, tuple[Candidate, ...]] | None = None

    @property
    def done(self) -> bool:
        """True once the configured number of generations has been told."""
        return self.generation >= self.config.generations

    def restore(self, generation: int, next_id: int, population: Sequence[Individual], seen: set[str]) -> None:
        """Continue after `generation` with this population (e.g. from a checkpoint)."""
        self.generation, self.next_id, self.seen = generation, next_id, set(seen)
        self._set_population(population)
        self._asked = None

    def ask(self) -> list[Candidate]:
        """The next generation's new, distinct candidates (founders for generation 0)."""
        if self.done:
            raise ConfigError(f"the search has finished its {self.config.generations} generations")
        generation = self.generation + 1
        rng = generation_rng(self.config.seed, generation)
        children = self._founders(rng) if generation == 0 else self._offspring(rng)
        candidates = []
        for genotype, parents, strategy in children:
            candidates.append(Candidate(self.next_id + len(candidates), generation, genotype, parents, strategy))
        self._asked = (generation, rng, tuple(candidates))
        return candidates

    def tell(self, children: Sequence[Individual]) -> GenerationOutcome:
        """Select the next population from the scored answers to the last `ask` (same ids, same order)."""
        if self._asked is None:
            raise ConfigError("tell() without a preceding ask()")
        generation, rng, asked = self._asked
        if [c.id for c in children] != [c.id for c in asked]:
            raise ConfigError("tell() needs one scored individual per asked candidate, in the same order")
        children = tuple(children)
        parents = self.population if generation > 0 else ()
        survival = self.tournament if self.tournament is not None and \
            self.config.is_tournament_generation(generation) else self.pareto
        n = len(children) if generation == 0 else self.config.population
        selection = survival.select(parents, children, n, rng, generation)
        pool = [*parents, *children]
        outcome_pool = decorate(pool, self.config.objectives, self.config.heuristics, self.ranking)
        self.generation = generation
        self.next_id = asked[-1].id + 1 if asked else self.next_id
        self.seen.update(child.genotype for child in children)
        self._set_population([pool[i] for i in selection.selected])
        self._asked = None
        return GenerationOutcome(generation, children, selection, outcome_pool, self.population, self.decorations,
                                 self.next_id)

    def _set_population(self, population: Sequence[Individual]) -> None:
        self.population = tuple(population)
        self.decorations = decorate(self.population, self.config.objectives, self.config.heuristics, self.ranking)

    def _founders(self, rng: np.random.Generator) -> list[tuple[str, tuple[int, ...], object]]:
        config = self.config
        base = initial_strategy(self.space, config.initial_mutation_probability, config.initial_width_step)
        founders: list[tuple[str, tuple[int, ...], object]] = []
        seen: set[str] = set()
        for _ in range(100 * config.population):
            if len(founders) == config.population:
                break
            genotype = self.space.canonical(self.space.sample(rng))
            if genotype in seen or (self.fits is not None and not self.fits(genotype)):
                continue
            seen.add(genotype)
            # Each founder perturbs the common start once, so selection has strategy variation to act on.
            founders.append((genotype, (), self_adapt(base, rng, config.strategy_learning_rate)))
        if len(founders) < 2:
            raise ConfigError(f"the {config.space} space gave fewer than 2 distinct genotypes within the size budget "
                              f"in {100 * config.population} draws (max_params={config.max_params}, "
                              f"max_flops={config.max_flops}, max_latency_ms={config.max_latency_ms})")
        return founders

    def _offspring(self, rng: np.random.Generator) -> list[tuple[str, tuple[int, ...], object]]:
        config = self.config
        seen = set(self.seen)
        front = self.decorations.front.astype(int)
        crowding = self.decorations.crowding.astype(float)
        children: list[tuple[str, tuple[int, ...], object]] = []
        attempts = 0
        while len(children) < config.offspring and attempts < 50 * config.offspring:
            attempts += 1
            a, b = binary_tournament(front, crowding, 2, rng)
            parents = [(self.population[i].genotype, self.population[i].strategy) for i in (a, b)]
            genotype, strategy = breed(self.space, parents, rng, config.crossover_probability,
                                       config.strategy_learning_rate)
            if genotype in seen or (self.fits is not None and not self.fits(genotype)):
                continue
            seen.add(genotype)
            children.append((genotype, (self.population[a].id, self.population[b].id), strategy))
        if len(children) < config.offspring:
            log.warning(
                "only %d new genotypes in %d attempts (the space is nearly exhausted around the population)",
                len(children), attempts)
        return children

