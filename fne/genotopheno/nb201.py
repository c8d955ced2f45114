"""The NAS-Bench-201 search space: official arch strings, compact 8-character genotypes, the "nb201" space.

An NB201 cell has 4 nodes and 6 edges, each carrying one of 5 ops, so the space holds 5**6 = 15,625 cells
(Dong & Yang, "NAS-Bench-201", ICLR 2020). The official arch string lists, node by node, each incoming
edge as `op~input`::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|

The compact genotype string used by the GA keeps one op character per edge in that same order
(node 1: 0->1; node 2: 0->2, 1->2; node 3: 0->3, 1->3, 2->3) with fixed '+' separators::

    C+CC+kCC        (the cell above)

Op characters (`NB201_OPS`): n none, k skip_connect, c nor_conv_1x1, C nor_conv_3x3, a avg_pool_3x3.
Every op position has the same 5-character alphabet and the separators are fixed, so any character-wise
mix of two valid compact strings is valid. `NB201Space.parse` accepts both forms; `format` writes the
compact one; `to_arch_str` / `from_arch_str` convert between them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from fne.errors import ConfigError, GenotypeError
from fne.genotopheno.genotype import check_characters
from fne.genotopheno.nb201_network import NB201_EDGES, NB201_OPS, NB201Network, build_nb201_network
from fne.genotopheno.search_space import CellGraph, GraphEdge, SearchSpace, register_space

__all__ = [
    "NB201_EDGES", "NB201_OPS", "NB201Genotype", "NB201Network", "NB201Space", "format_compact",
    "from_arch_str", "nb201_cell_graph", "parse_arch_str", "parse_compact", "parse_nb201", "to_arch_str",
]

NODE_SEPARATOR = "+"


def _compact_positions() -> list[tuple[str, str]]:
    positions: list[tuple[str, str]] = []
    for index, (to, source) in enumerate(NB201_EDGES):
        if index and source == 0:
            positions.append((NODE_SEPARATOR, f"the '+' before node {to}"))
        positions.append((NB201_OPS.codes, f"op of edge {source}->{to}"))
    return positions


COMPACT_POSITIONS: tuple[tuple[str, str], ...] = tuple(_compact_positions())


@dataclass(frozen=True)
class NB201Genotype:
    """One NB201 cell: the op names of its six edges in NB201_EDGES order."""

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.ops, tuple) or len(self.ops) != len(NB201_EDGES):
            raise GenotypeError(f"an NB201 genotype needs a tuple of {len(NB201_EDGES)} op names, "
                                f"got {self.ops!r}")
        for op, (to, source) in zip(self.ops, NB201_EDGES, strict=True):
            if op not in NB201_OPS:
                raise GenotypeError(f"edge {source}->{to}: unknown op {op!r}; known: {', '.join(NB201_OPS)}")

    def to_arch_str(self) -> str:
        """The official NB201 arch string, e.g. `|nor_conv_3x3~0|+|...|+|...|`."""
        nodes = []
        for target in range(1, 4):
            edges = [f"{op}~{source}" for op, (to, source) in zip(self.ops, NB201_EDGES, strict=True) if to == target]
            nodes.append("|" + "|".join(edges) + "|")
        return NODE_SEPARATOR.join(nodes)

    @classmethod
    def from_arch_str(cls, arch: str) -> NB201Genotype:
        """Parse an official NB201 arch string."""
        return parse_arch_str(arch)

    def to_compact(self) -> str:
        """The compact 8-character genotype string, e.g. `C+CC+kCC`."""
        return format_compact(self)

    @classmethod
    def from_compact(cls, text: str) -> NB201Genotype:
        """Parse a compact genotype string."""
        return parse_compact(text)

    def __str__(self) -> str:
        return format_compact(self)


def _join_codes(codes: Iterable[str]) -> str:
    chars = []
    for code, (_, source) in zip(codes, NB201_EDGES, strict=True):
        if chars and source == 0:
            chars.append(NODE_SEPARATOR)
        chars.append(code)
    return "".join(chars)


def format_compact(genotype: NB201Genotype) -> str:
    """The compact string of a genotype; `parse_compact(format_compact(g)) == g`."""
    return _join_codes(NB201_OPS.code_of(op) for op in genotype.ops)


def parse_compact(text: str) -> NB201Genotype:
    """Parse a compact string like `C+CC+kCC`; GenotypeError names the bad position."""
    if not isinstance(text, str):
        raise GenotypeError(f"an NB201 genotype must be a string, got {type(text).__name__}")
    check_characters(text, COMPACT_POSITIONS, "NB201 genotype")
    return NB201Genotype(tuple(NB201_OPS.name_of(c) for c in text if c != NODE_SEPARATOR))


def parse_arch_str(arch: str) -> NB201Genotype:
    """Parse an official arch string `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`; errors name the node and edge."""
    if not isinstance(arch, str):
        raise GenotypeError(f"an NB201 arch string must be a string, got {type(arch).__name__}")
    nodes = arch.split(NODE_SEPARATOR)
    if len(nodes) != 3:
        raise GenotypeError(f"bad NB201 arch string {arch!r}: expected 3 nodes separated by '+', "
                            f"found {len(nodes)}")
    ops: list[str] = []
    for target, node in enumerate(nodes, start=1):
        where = f"bad NB201 arch string {arch!r}: node {target} ({node!r})"
        if len(node) < 2 or node[0] != "|" or node[-1] != "|":
            raise GenotypeError(f"{where} must start and end with '|'")
        edges = node[1:-1].split("|")
        if len(edges) != target:
            raise GenotypeError(f"{where} has {len(edges)} edges, expected {target} "
                                "(one from each earlier node)")
        for source, edge in enumerate(edges):
            op, tilde, index = edge.partition("~")
            if not tilde:
                raise GenotypeError(f"{where} edge {source}: {edge!r} is not 'op~input'")
            if index != str(source):
                raise GenotypeError(f"{where} edge {source}: input {index!r}, expected {source} "
                                    "(edges are listed by input node 0, 1, 2)")
            if op not in NB201_OPS:
                raise GenotypeError(f"{where} edge {source}->{target}: unknown op {op!r}; "
                                    f"known: {', '.join(NB201_OPS)}")
            ops.append(op)
    return NB201Genotype(tuple(ops))


def parse_nb201(text: str) -> NB201Genotype:
    """Parse either form: an official arch string (it contains '|' or '~') or a compact string."""
    if isinstance(text, str) and ("|" in text or "~" in text):
        return parse_arch_str(text)
    return parse_compact(text)


def to_arch_str(text: str) -> str:
    """The official arch string of a compact (or official) genotype string."""
    return parse_nb201(text).to_arch_str()


def from_arch_str(arch: str) -> str:
    """The compact genotype string of an official (or compact) arch string."""
    return format_compact(parse_nb201(arch))


@register_space("nb201")
@dataclass
class NB201Space(SearchSpace):
    """NAS-Bench-201: one cell of 6 edges x 5 ops in a fixed skeleton of width C with N cells per stage."""

    title: ClassVar[str] = "NB201"
    supports_ground_truth: ClassVar[bool] = True  # every cell's trained accuracy is tabulated by arch string
    ground_truth_columns: ClassVar[tuple[str, str]] = ("arch_str", "cifar10_test")
    ground_truth_file: ClassVar[str | None] = "nb201/nb201_cifar10.csv"
    tournament_layout: ClassVar[str | None] = "chain"  # cells between fixed ResNet blocks, one input each
    tournament_defaults: ClassVar[Mapping[str, int]] = MappingProxyType(
        {"tournament_steps": 30, "tournament_C": 8, "tournament_batch_size": 32})
    # 20 + 20 x 19 = 400 evaluations (of 15,625 cells), about 2.6% of the space. Tournaments are off: on 20
    # random groups a 30-step supernet picked the best of 4 only 30% of the time (random: 25%) at 26 CPU-s
    # each, while the heuristic prior alone costs nothing (experiments/results/tournament_prior.md).
    # Finalists: the 64 best by rank_combined train at width 8 and the fastest-training one is the pick
    # (fne/training/finalists.py). The scores saturate at NB201's top, where they prefer conv-dense cells
    # to the residual ones; NB201's best cells sat at ranks 8-32 of a search's ~400 distinct evaluations,
    # so 64 leave a margin. Residual cells lead the training loss from about step 10, so the first rung can
    # be short: 64 x 12 + 32 x 13 + 16 x 25 + 8 x 50 = 1,984 steps of a 0.3M-parameter network.
    search_defaults: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {"population": 20, "offspring": 20, "generations": 19, "tournament_every": 0, "finalists": 64,
         "finalist_C": 8})
    evaluation_size: ClassVar[tuple[int | None, int | None]] = (16, 5)  # NB201's TinyNetwork
    searched_size: ClassVar[tuple[int | None, int | None]] = (16, 5)

    C: int = 16
    layers: int = 5  # N, cells per stage, as in NB201

    def __post_init__(self) -> None:
        if self.C < 1 or self.layers < 1:
            raise ConfigError(f"nb201 space: C={self.C} and layers={self.layers} must be positive")

    def positions(self) -> list[tuple[str, str]]:
        """(alphabet, description) of the 8 compact positions: 6 op characters and 2 fixed '+'."""
        return list(COMPACT_POSITIONS)

    def parse(self, text: str) -> NB201Genotype:
        """Parse a compact genotype or a pasted official arch string into the same NB201Genotype."""
        return parse_nb201(text)

    def format(self, genotype: NB201Genotype) -> str:
        """The compact string of a genotype (always the compact form)."""
        return format_compact(genotype)

    def sample(self, rng: np.random.Generator) -> str:
        """A uniformly random cell out of all 15,625 (every op independently uniform, `none` included)."""
        codes = NB201_OPS.codes
        return format_compact(NB201Genotype(tuple(
            NB201_OPS.name_of(codes[int(i)]) for i in rng.integers(len(codes), size=len(NB201_EDGES)))))

    def build(self, genotype: NB201Genotype | str, *, C: int | None = None, layers: int | None = None,
              num_classes: int = 10, seed: int | None = None) -> NB201Network:
        """The NB201 TinyNetwork of a genotype; C and layers (= N) default to the space's 16 and 5."""
        genotype = self._as_genotype(genotype)
        return build_nb201_network(genotype.ops, self.C if C is None else C,
                                   self.layers if layers is None else layers, num_classes, seed=seed)

    def size(self) -> int:
        """Number of cells: 5 ops ** 6 edges = 15,625."""
        return math.prod(len(alphabet) for alphabet in self.alphabets())

    def all_genotypes(self) -> Iterator[str]:
        """Every compact genotype string of the space, once each (15,625 strings)."""
        for codes in itertools.product(NB201_OPS.codes, repeat=len(NB201_EDGES)):
            yield _join_codes(codes)

    def alternative_forms(self, genotype: str) -> dict[str, str]:
        """The official arch string."""
        return {"NAS-Bench-201 arch string": to_arch_str(genotype)}

    def cell_graphs(self, genotype: str) -> list[CellGraph]:
        """The one cell, titled with its compact string."""
        nodes, edges = nb201_cell_graph(parse_nb201(genotype).ops)
        return [CellGraph.of("cell", f"NB201 cell {genotype}", nodes, edges, ["3"])]


def nb201_cell_graph(ops: Sequence[str]) -> tuple[list[str], list[GraphEdge]]:
    """Nodes in drawing order and labelled edges of an NB201 cell (ops in the arch-string edge order)."""
    edges = [(str(source), str(target), op) for op, (target, source) in zip(ops, NB201_EDGES, strict=True)]
    return [str(i) for i in range(4)], edges
