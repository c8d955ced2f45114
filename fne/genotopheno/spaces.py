"""Search spaces behind one interface, and the registry that names them (`darts`, `nb201`).

A search space knows the per-position alphabets of its genotype strings (what crossover and the
property tests need), parses and formats them, samples random ones, builds networks and counts itself.
Users add a space with `@register_space("name")` on a `SearchSpace` subclass.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from torch import nn

from fne.errors import ConfigError, GenotypeError
from fne.genotopheno.genotype import (
    Cell,
    Edge,
    Genotype,
    GenotypeShape,
    format_genotype,
    gene_positions,
    parse,
)
from fne.genotopheno.network import build_network
from fne.genotopheno.ops import DARTS_OPS

SPACES: dict[str, type[SearchSpace]] = {}


def register_space(name: str) -> Callable[[type[SearchSpace]], type[SearchSpace]]:
    """Class decorator: make a SearchSpace subclass available as `get_space(name)`; refuses duplicates."""

    def decorate(cls: type[SearchSpace]) -> type[SearchSpace]:
        if name in SPACES:
            raise ValueError(f"search space {name!r} is already registered")
        cls.name = name
        SPACES[name] = cls
        return cls

    return decorate


def get_space(name: str, **options: Any) -> SearchSpace:
    """Instantiate the registered search space `name` with its options."""
    _load_builtin_spaces()
    try:
        cls = SPACES[name]
    except KeyError:
        raise ConfigError(f"unknown search space {name!r}; known: {', '.join(sorted(SPACES))}") from None
    return cls(**options)


def _load_builtin_spaces() -> None:
    # NB201 lives in its own module; importing it registers it.
    from fne.genotopheno import nb201  # noqa: F401


class SearchSpace(ABC):
    """One search space: string grammar, sampling, phenotype builder and size."""

    name: ClassVar[str] = ""

    @abstractmethod
    def positions(self) -> list[tuple[str, str]]:
        """(alphabet, description) of every character position of this space's genotype strings."""

    def alphabets(self) -> list[str]:
        """Allowed characters per position; any per-position mix of valid strings is valid."""
        return [alphabet for alphabet, _ in self.positions()]

    @abstractmethod
    def parse(self, text: str) -> Any:
        """Genotype object of a string; GenotypeError naming the position on bad input."""

    @abstractmethod
    def format(self, genotype: Any) -> str:
        """Canonical string of a genotype object."""

    def canonical(self, text: str) -> str:
        """Validate a string and return its canonical form."""
        return self.format(self.parse(text))

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> str:
        """A random genotype string drawn with the given generator."""

    @abstractmethod
    def build(self, genotype: Any, *, C: int | None = None, layers: int | None = None, num_classes: int = 10,
              seed: int | None = None) -> nn.Module:
        """The network of a genotype (string or object); C/layers override the space's defaults."""

    @abstractmethod
    def size(self) -> int:
        """Number of distinct genotypes in the space."""

    def _as_genotype(self, genotype: Any) -> Any:
        return self.parse(genotype) if isinstance(genotype, str) else genotype


@register_space("darts")
@dataclass
class DartsSpace(SearchSpace):
    """The DARTS cell space with per-stage widths and cell counts in the genotype (see genotype.py)."""

    nodes: int = 4
    stages: int = 3
    widths: tuple[int, ...] = (16, 32, 64)
    cells_per_stage: tuple[int, ...] = (1, 1, 1)
    # DARTS never keeps `none` in a derived cell; sampling leaves it out too (mutation can still pick it).
    exclude_from_sampling: tuple[str, ...] = ("none",)

    def __post_init__(self) -> None:
        self.widths = tuple(self.widths)
        self.cells_per_stage = tuple(self.cells_per_stage)
        if len(self.widths) != self.stages or len(self.cells_per_stage) != self.stages:
            raise ConfigError(f"darts space: {self.stages} stages need {self.stages} widths and cell counts, got "
                              f"{self.widths} and {self.cells_per_stage}")
        self.shape = GenotypeShape(self.nodes, self.stages)
        self._positions = gene_positions(self.shape, DARTS_OPS)

    def positions(self) -> list[tuple[str, str]]:
        """(alphabet, description) of every position at this space's shape."""
        return list(self._positions)

    def parse(self, text: str) -> Genotype:
        """Parse a DARTS-space string and check it has this space's shape."""
        genotype = parse(text)
        if genotype.shape != self.shape:
            raise GenotypeError(f"genotype {text!r} has {genotype.shape.nodes} nodes and {genotype.shape.stages} "
                                f"stages; this space has {self.nodes} nodes and {self.stages} stages")
        return genotype

    def format(self, genotype: Genotype) -> str:
        """Canonical string of a Genotype."""
        return format_genotype(genotype)

    def sample(self, rng: np.random.Generator) -> str:
        """Uniform ops (without `none`) and two distinct uniform inputs per node; the space's widths and counts."""
        ops = [name for name in DARTS_OPS.names if name not in self.exclude_from_sampling]

        def cell() -> Cell:
            nodes = []
            for i in range(self.nodes):
                inputs = rng.choice(i + 2, size=2, replace=False)
                nodes.append(tuple(Edge(ops[int(rng.integers(len(ops)))], int(j)) for j in inputs))
            return Cell(tuple(nodes))

        return self.format(Genotype(cell(), cell(), self.widths, self.cells_per_stage))

    def build(self, genotype: Genotype | str, *, C: int | None = None, layers: int | None = None,
              num_classes: int = 10, seed: int | None = None) -> nn.Module:
        """DARTS network; by default the genotype's own widths and cell counts."""
        return build_network(self._as_genotype(genotype), C, layers, num_classes, seed=seed)

    def size(self) -> int:
        """Every string of the grammar is a distinct genotype: prod over positions of the alphabet sizes."""
        return math.prod(len(alphabet) for alphabet in self.alphabets())
