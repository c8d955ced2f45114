"""The DARTS-like genotype: a frozen dataclass and its fixed-length string form.

Grammar (B intermediate nodes per cell, S stages; defaults B=4, S=3)::

    <normal cell> | <reduction cell> | <width_1>.<width_2>...<width_S> | <cells_1>.<cells_2>...<cells_S>

A cell is B nodes joined by '-'; a node is two edges; an edge is an op character followed by the index
of its input: 0 and 1 are the outputs of the two previous cells, 2.. the earlier nodes of this cell, so
node i (0-based) may read inputs 0..i+1. Op characters (`DARTS_OPS`): n none, k skip_connect,
s sep_conv_3x3, S sep_conv_5x5, d dil_conv_3x3, D dil_conv_5x5, m max_pool_3x3, a avg_pool_3x3.
A width is two digits (10..99 channels of the stage's cells); a cell count is one digit (1..9 normal
cells in the stage; a reduction cell opens every stage after the first). DARTS_V2 at widths 16/32/64
with one normal cell per stage reads::

    s0s1-s0s1-s1k0-k0d2|m0m1-k2m1-m0k2-k2m1|16.32.64|1.1.1

Every character position is one gene with its own alphabet (`alphabets`), so taking each character
from either of two valid strings of the same shape always gives a valid string.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass

from fne.errors import GenotypeError
from fne.genotopheno.ops import DARTS_OPS, OpRegistry

MAX_NODES = 8  # an input index must stay one digit
WIDTH_FIRST_DIGITS = "123456789"
DIGITS = "0123456789"
CELL_COUNT_DIGITS = "123456789"

# The DARTS reference form (quark0/darts cnn/genotypes.py), kept identical so published cells load as is.
DartsGenotype = namedtuple("DartsGenotype", "normal normal_concat reduce reduce_concat")


@dataclass(frozen=True)
class Edge:
    """One edge into a node: the op applied and the index of the tensor it reads."""

    op: str
    input: int


@dataclass(frozen=True)
class Cell:
    """B intermediate nodes, each the sum of two edges; the cell's output concatenates all nodes."""

    nodes: tuple[tuple[Edge, Edge], ...]


@dataclass(frozen=True)
class GenotypeShape:
    """What two genotypes must share for character-wise crossover: nodes per cell and stages."""

    nodes: int = 4
    stages: int = 3


@dataclass(frozen=True)
class Genotype:
    """A whole architecture: normal cell, reduction cell, channel width and normal-cell count per stage."""

    normal: Cell
    reduce: Cell
    widths: tuple[int, ...] = (16, 32, 64)
    cells_per_stage: tuple[int, ...] = (1, 1, 1)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def shape(self) -> GenotypeShape:
        """The (nodes, stages) shape of this genotype."""
        return GenotypeShape(len(self.normal.nodes), len(self.widths))

    def __str__(self) -> str:
        return format_genotype(self)


def validate(genotype: Genotype, ops: OpRegistry = DARTS_OPS) -> None:
    """Raise GenotypeError unless every op is known and every index, width and count is in range."""
    nodes = len(genotype.normal.nodes)
    if not 1 <= nodes <= MAX_NODES:
        raise GenotypeError(f"a cell needs 1..{MAX_NODES} nodes, got {nodes}")
    for kind, cell in (("normal", genotype.normal), ("reduce", genotype.reduce)):
        if len(cell.nodes) != nodes:
            raise GenotypeError(f"{kind} cell has {len(cell.nodes)} nodes but the normal cell has {nodes}")
        for i, node in enumerate(cell.nodes):
            if len(node) != 2:
                raise GenotypeError(f"{kind} cell node {i} has {len(node)} edges, expected 2")
            for edge in node:
                if edge.op not in ops:
                    raise GenotypeError(f"{kind} cell node {i}: unknown op {edge.op!r}; known: {', '.join(ops)}")
                if not 0 <= edge.input <= i + 1:
                    raise GenotypeError(f"{kind} cell node {i}: input {edge.input} must be in 0..{i + 1} "
                                        "(0, 1 are the previous cells, 2.. earlier nodes)")
    if len(genotype.widths) != len(genotype.cells_per_stage) or not genotype.widths:
        raise GenotypeError(f"{len(genotype.widths)} widths but {len(genotype.cells_per_stage)} cell counts; "
                            "need one of each per stage")
    for s, width in enumerate(genotype.widths):
        if not 10 <= width <= 99:
            raise GenotypeError(f"stage {s} width {width} is outside 10..99 channels")
    for s, count in enumerate(genotype.cells_per_stage):
        if not 1 <= count <= 9:
            raise GenotypeError(f"stage {s} cell count {count} is outside 1..9")


def _cell_positions(shape: GenotypeShape, kind: str, ops: OpRegistry) -> list[tuple[str, str]]:
    positions: list[tuple[str, str]] = []
    for i in range(shape.nodes):
        if i:
            positions.append(("-", f"the '-' after {kind} cell node {i - 1}"))
        for e in range(2):
            positions.append((ops.codes, f"{kind} cell node {i} edge {e} op"))
            positions.append((DIGITS[: i + 2], f"{kind} cell node {i} edge {e} input (0..{i + 1}: earlier nodes only)"))
    return positions


def gene_positions(shape: GenotypeShape = GenotypeShape(), ops: OpRegistry = DARTS_OPS) -> list[tuple[str, str]]:
    """(alphabet, description) of every character position of a genotype string of this shape."""
    if not 1 <= shape.nodes <= MAX_NODES or shape.stages < 1:
        raise GenotypeError(f"unsupported shape {shape}: nodes must be 1..{MAX_NODES}, stages >= 1")
    positions = _cell_positions(shape, "normal", ops)
    positions.append(("|", "the '|' after the normal cell"))
    positions += _cell_positions(shape, "reduce", ops)
    positions.append(("|", "the '|' after the reduction cell"))
    for s in range(shape.stages):
        if s:
            positions.append((".", f"the '.' after stage {s - 1}'s width"))
        positions.append((WIDTH_FIRST_DIGITS, f"stage {s} width, tens digit"))
        positions.append((DIGITS, f"stage {s} width, units digit"))
    positions.append(("|", "the '|' after the widths"))
    for s in range(shape.stages):
        if s:
            positions.append((".", f"the '.' after stage {s - 1}'s cell count"))
        positions.append((CELL_COUNT_DIGITS, f"stage {s} normal-cell count"))
    return positions


def alphabets(shape: GenotypeShape = GenotypeShape(), ops: OpRegistry = DARTS_OPS) -> list[str]:
    """The allowed characters of every position of a genotype string of this shape."""
    return [alphabet for alphabet, _ in gene_positions(shape, ops)]


def check_characters(text: str, positions: Sequence[tuple[str, str]], what: str) -> None:
    """Raise GenotypeError naming the first position whose character is outside its alphabet, or a bad length."""
    for index, (char, (alphabet, description)) in enumerate(zip(text, positions)):
        if char not in alphabet:
            raise GenotypeError(f"bad {what} {text!r}: position {index} ({description}) is {char!r}, "
                                f"expected one of {alphabet!r}")
    if len(text) != len(positions):
        raise GenotypeError(f"bad {what} {text!r}: length {len(text)}, expected {len(positions)}")


def infer_shape(text: str) -> GenotypeShape:
    """Guess the (nodes, stages) shape from the separators, so errors can be reported per position."""
    if not isinstance(text, str):
        raise GenotypeError(f"a genotype must be a string, got {type(text).__name__}")
    sections = text.split("|")
    if len(sections) != 4:
        raise GenotypeError(f"bad genotype {text!r}: expected 4 sections 'normal|reduce|widths|cells' "
                            f"separated by '|', found {len(sections)}")
    nodes = sections[0].count("-") + 1
    stages = sections[2].count(".") + 1
    if nodes > MAX_NODES:
        raise GenotypeError(f"bad genotype {text!r}: {nodes} nodes per cell, at most {MAX_NODES} are supported")
    return GenotypeShape(nodes, stages)


def parse(text: str, ops: OpRegistry = DARTS_OPS) -> Genotype:
    """Parse a genotype string; a malformed one raises GenotypeError naming the position and the problem."""
    shape = infer_shape(text)
    check_characters(text, gene_positions(shape, ops), "genotype")
    normal, reduce, widths, counts = text.split("|")
    return Genotype(
        normal=_parse_cell(normal, ops),
        reduce=_parse_cell(reduce, ops),
        widths=tuple(int(w) for w in widths.split(".")),
        cells_per_stage=tuple(int(c) for c in counts.split(".")),
    )


def _parse_cell(text: str, ops: OpRegistry) -> Cell:
    nodes = []
    for node in text.split("-"):
        nodes.append((Edge(ops.name_of(node[0]), int(node[1])), Edge(ops.name_of(node[2]), int(node[3]))))
    return Cell(tuple(nodes))


def format_genotype(genotype: Genotype, ops: OpRegistry = DARTS_OPS) -> str:
    """The canonical string of a genotype; `parse(format_genotype(g)) == g`."""

    def cell(c: Cell) -> str:
        return "-".join("".join(f"{ops.code_of(e.op)}{e.input}" for e in node) for node in c.nodes)

    return "|".join([
        cell(genotype.normal),
        cell(genotype.reduce),
        ".".join(f"{w:02d}" for w in genotype.widths),
        ".".join(str(c) for c in genotype.cells_per_stage),
    ])


def to_darts(genotype: Genotype) -> DartsGenotype:
    """The DARTS reference form: flat (op, input) lists and concat = all intermediate nodes."""
    concat = list(range(2, 2 + len(genotype.normal.nodes)))

    def flat(cell: Cell) -> list[tuple[str, int]]:
        return [(e.op, e.input) for node in cell.nodes for e in node]

    return DartsGenotype(flat(genotype.normal), concat, flat(genotype.reduce), list(concat))


def from_darts(darts, widths: Sequence[int] = (16, 32, 64), cells_per_stage: Sequence[int] = (1, 1, 1)) -> Genotype:
    """Build a Genotype from a DARTS-form genotype (any object with normal/reduce lists of (op, input))."""

    def cell(edges, concat, kind: str) -> Cell:
        edges = list(edges)
        if len(edges) % 2:
            raise GenotypeError(f"DARTS {kind} cell has {len(edges)} edges; expected two per node")
        nodes = len(edges) // 2
        if concat is not None and sorted(concat) != list(range(2, 2 + nodes)):
            raise GenotypeError(f"DARTS {kind}_concat {list(concat)} is not supported: fne concatenates all "
                                f"intermediate nodes {list(range(2, 2 + nodes))}")
        return Cell(tuple((Edge(*edges[2 * i]), Edge(*edges[2 * i + 1])) for i in range(nodes)))

    return Genotype(
        normal=cell(darts.normal, getattr(darts, "normal_concat", None), "normal"),
        reduce=cell(darts.reduce, getattr(darts, "reduce_concat", None), "reduce"),
        widths=tuple(widths),
        cells_per_stage=tuple(cells_per_stage),
    )


# Published cells, copied from the authors' genotypes.py files (DARTS: quark0/darts; P-DARTS: chenxin061/pdarts;
# PC-DARTS: yuhuixu1993/PC-DARTS).
PUBLISHED: dict[str, DartsGenotype] = {
    "DARTS_V1": DartsGenotype(
        normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
                ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)],
        reduce_concat=[2, 3, 4, 5]),
    "DARTS_V2": DartsGenotype(
        normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)],
        reduce_concat=[2, 3, 4, 5]),
    "PDARTS": DartsGenotype(
        normal=[("skip_connect", 0), ("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 1), ("sep_conv_3x3", 3), ("sep_conv_3x3", 0), ("dil_conv_5x5", 4)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("avg_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
                ("max_pool_3x3", 0), ("dil_conv_3x3", 1), ("dil_conv_3x3", 1), ("dil_conv_5x5", 3)],
        reduce_concat=[2, 3, 4, 5]),
    "PC_DARTS": DartsGenotype(
        normal=[("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
                ("sep_conv_5x5", 0), ("sep_conv_3x3", 1), ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        normal_concat=[2, 3, 4, 5],
        reduce=[("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
                ("sep_conv_3x3", 0), ("sep_conv_3x3", 3), ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)],
        reduce_concat=[2, 3, 4, 5]),
}


def published(name: str, widths: Sequence[int] = (16, 32, 64), cells_per_stage: Sequence[int] = (1, 1, 1)) -> Genotype:
    """A published cell by name (DARTS_V1, DARTS_V2, PDARTS, PC_DARTS) as a Genotype."""
    try:
        darts = PUBLISHED[name]
    except KeyError:
        raise GenotypeError(f"unknown published genotype {name!r}; known: {', '.join(PUBLISHED)}") from None
    return from_darts(darts, widths, cells_per_stage)
