"""The search-space interface and the registry that names the spaces.

A search space owns everything that differs from one space to another, so the rest of fne asks the
space instead of testing which space it has. Besides grammar, sampling, building and size, it says:

- evolution: whether genotypes carry stage widths (`has_widths`, `stage_widths`, `with_stage_width`) and
  how an edge is swapped, re-opped or rewired (`swap_edges`, `change_op`, `rewire`; by default on the op
  characters of the string, grouped into nodes by the fixed separator characters);
- tournaments: the candidate network on the common skeleton (`tournament_network`), the supernet layout
  that mixes its cells (`tournament_layout`) and the search's tournament defaults (`tournament_defaults`);
- search settings the space fills in when a config leaves them None, such as a size budget (`search_defaults`);
- export: the evaluation network's default size, auxiliary head and drop-path (`evaluation_size`,
  `searched_size`, `auxiliary_head`, `drop_path_prob`, `evaluation_canonical`, `evaluation_network`) and
  published cells known by name (`named_genotypes`);
- reports: other spellings of a genotype (`alternative_forms`) and the cells to draw (`cell_graphs`);
- data: whether a search can look up a ground-truth table of arch strings and accuracies
  (`supports_ground_truth`), and how a validation table's rows are read and shaped
  (`ground_truth_columns`, `ground_truth_file`, `table_genotype`).

Users add a space with `@register_space("name")` on a SearchSpace subclass (the built-in ones are
registered by importing `fne.genotopheno.spaces`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
from torch import nn

from fne.errors import ConfigError
from fne.registry import Registry

GraphEdge = tuple[str, str, str]  # (source node, target node, op label; "" for an unlabelled concat edge)


@dataclass(frozen=True)
class CellGraph:
    """One cell of a genotype as a DAG to draw: nodes in drawing order, labelled edges, output nodes."""

    stem: str  # file-name part, e.g. "normal_cell"
    title: str  # e.g. "normal cell"
    nodes: tuple[str, ...]
    edges: tuple[GraphEdge, ...]
    outputs: tuple[str, ...]

    @classmethod
    def of(cls, stem: str, title: str, nodes: Sequence[str], edges: Sequence[GraphEdge],
           outputs: Sequence[str]) -> CellGraph:
        """A CellGraph from any sequences (stored as tuples)."""
        return cls(stem, title, tuple(nodes), tuple(edges), tuple(outputs))


SPACES: Registry[type[SearchSpace]] = Registry("search space")


def register_space(name: str, **meta: Any) -> Callable[[type[SearchSpace]], type[SearchSpace]]:
    """Class decorator: make a SearchSpace subclass available as `get_space(name)`; refuses duplicates."""

    def decorate(cls: type[SearchSpace]) -> type[SearchSpace]:
        SPACES.add(name, cls, **meta)
        cls.name = name
        return cls

    return decorate


class SearchSpace(ABC):
    """One search space: string grammar, sampling, phenotype builder and size, and its per-space hooks."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""  # how messages and figures name the space's cells ("DARTS", "NB201")
    has_widths: ClassVar[bool] = False  # genotypes carry per-stage channel widths (width mutations apply)
    supports_ground_truth: ClassVar[bool] = False  # a search's --ground-truth lookup applies
    # plot_scores's defaults for this space: the table's (architecture, accuracy) columns and its file
    # under the shared data folder (None: the user must name one).
    ground_truth_columns: ClassVar[tuple[str, str]] = ("arch_str", "accuracy")
    ground_truth_file: ClassVar[str | None] = None
    tournament_layout: ClassVar[str | None] = None  # supernet that mixes the cells; None: no tournaments
    # The search's tournament settings when the user gives none (SearchConfig field -> value).
    tournament_defaults: ClassVar[Mapping[str, int]] = MappingProxyType(
        {"tournament_steps": 30, "tournament_C": 8, "tournament_batch_size": 32})
    # SearchConfig fields this space sets when a config leaves them None (e.g. a size budget, loop sizes).
    search_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType({})
    evaluation_size: ClassVar[tuple[int | None, int | None]] = (None, None)  # export's (C, layers); None: own
    searched_size: ClassVar[tuple[int | None, int | None]] = (None, None)  # (C, layers) of the searched network
    auxiliary_head: ClassVar[bool] = False  # the evaluation network has an auxiliary head (then on by default)
    drop_path_prob: ClassVar[float] = 0.0  # the evaluation network's training default

    # ---- grammar, sampling, building -----------------------------------------------------------------
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

    # ---- evolution: what the mutations change ----------------------------------------------------------
    def stage_widths(self, genotype: str) -> tuple[int, ...]:
        """Channel width of every stage written in the genotype (none unless `has_widths`)."""
        return ()

    def with_stage_width(self, genotype: str, stage: int, width: int) -> str:
        """The genotype with stage `stage` at `width` channels (clamped to what the grammar can write)."""
        raise ConfigError(f"the {self.name} space has no stage widths to change")

    def op_groups(self) -> list[list[int]]:
        """Positions of op characters, grouped per node: a one-character alphabet separates two nodes."""
        groups: list[list[int]] = [[]]
        for index, alphabet in enumerate(self.alphabets()):
            if len(alphabet) == 1:
                if groups[-1]:
                    groups.append([])
            else:
                groups[-1].append(index)
        return [group for group in groups if group]

    def swap_edges(self, genotype: str, rng: np.random.Generator) -> str:
        """Exchange the ops of two edges that differ (default: any two op positions)."""
        positions = [i for group in self.op_groups() for i in group]
        text = self.canonical(genotype)
        return self.canonical(swap_characters(text, [(i, j) for i in positions for j in positions if i < j], rng))

    def change_op(self, genotype: str, rng: np.random.Generator) -> str:
        """Give one random edge a different op (default: one op position, another character of its alphabet)."""
        text = self.canonical(genotype)
        alphabets = self.alphabets()
        positions = [i for group in self.op_groups() for i in group]
        index = positions[int(rng.integers(len(positions)))]
        others = [c for c in alphabets[index] if c != text[index]]
        return self.canonical(text[:index] + others[int(rng.integers(len(others)))] + text[index + 1:])

    def rewire(self, genotype: str, rng: np.random.Generator) -> str:
        """Move an edge to another input; with fixed inputs (default), swap the ops of two edges into one node."""
        text = self.canonical(genotype)
        pairs = [(i, j) for group in self.op_groups() for i in group for j in group if i < j]
        return self.canonical(swap_characters(text, pairs, rng))

    # ---- tournaments -------------------------------------------------------------------------------------
    def tournament_network(self, genotype: str, *, C: int, cells_per_stage: int, num_classes: int,
                           seed: int) -> nn.Module:
        """The candidate's network on the tournament's common skeleton (default: `build` at C and layers)."""
        return self.build(genotype, C=C, layers=cells_per_stage, num_classes=num_classes, seed=seed)

    # ---- export --------------------------------------------------------------------------------------------
    def named_genotypes(self) -> Mapping[str, str]:
        """Published cells of this space by name (e.g. DARTS_V2) -> canonical string."""
        return {}

    def evaluation_canonical(self, text: str) -> str:
        """The canonical string of a genotype `fne export` accepts (default: `canonical`)."""
        return self.canonical(text)

    def evaluation_network(self, genotype: str, *, C: int | None, layers: int | None, num_classes: int = 10,
                           auxiliary: bool = False, drop_path_prob: float = 0.0, seed: int | None = None) -> nn.Module:
        """The network `fne export` writes: `build` at C and layers, with drop-path where the network has it."""
        if auxiliary and not self.auxiliary_head:
            raise ConfigError(f"the {self.name} network has no auxiliary head; drop --auxiliary")
        model = self.build(genotype, C=C, layers=layers, num_classes=num_classes, seed=seed)
        if hasattr(model, "set_drop_path"):
            model.set_drop_path(drop_path_prob)
        elif drop_path_prob:
            raise ConfigError(f"the {self.name} network has no drop-path; use drop_path_prob=0")
        return model

    # ---- data: validation tables ---------------------------------------------------------------------------
    def table_genotype(self, text: str, *, C: int | None = None, layers: int | None = None) -> str:
        """The canonical genotype a ground-truth row's text names, shaped as the table's network.

        By default the text is one of this space's strings and C/layers are applied when the network is
        built; a space whose genotypes carry their own shape (DARTS) writes C/layers into the string.
        """
        return self.canonical(text)

    def table_build_size(self, C: int | None, layers: int | None) -> tuple[int | None, int | None]:
        """The (C, layers) to build a `table_genotype` with (default: as given)."""
        return C, layers

    # ---- reports -------------------------------------------------------------------------------------------
    def alternative_forms(self, genotype: str) -> dict[str, str]:
        """Other spellings of a genotype worth showing next to it (label -> text)."""
        return {}

    def cell_graphs(self, genotype: str) -> list[CellGraph]:
        """The cells of a genotype as graphs to draw (none by default)."""
        return []


def swap_characters(text: str, candidates: Sequence[tuple[int, int]], rng: np.random.Generator) -> str:
    """Swap the characters of one random pair of positions among those that differ (text unchanged if none)."""
    pairs = [(i, j) for i, j in candidates if text[i] != text[j]]
    if not pairs:
        return text
    i, j = pairs[int(rng.integers(len(pairs)))]
    chars = list(text)
    chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)
