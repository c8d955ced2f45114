"""What a network of each space is made of, for latency: measurable parts and the network as a sum of them.

FBNet (Wu et al., CVPR 2019) and HW-NAS-Bench (Li et al., ICLR 2021) predict a network's latency on a
device as the sum of its blocks' latencies, each measured once on that device at the shape it runs at.
A `LatencyLayout` says, for one space, which parts exist at every shape its search can produce (`parts`:
what `fne latency-table` measures) and which parts, with which signs, make up one genotype's network
(`terms`). The network is the genotype's own (its widths and cells, as `fne export --as-searched
--no-auxiliary` writes it), at batch 1, on square inputs of `image_size` pixels.

A cell is predicted as its *frame* (the cell with every op an identity: the Python loop over nodes, the
node sums, the concatenation), plus its input preprocessing, plus each op minus the identity call the frame
already counted. DARTS widths (10..99 per stage, so 3 w0 or 4 w as a cell's input) are measured on the grids
below and interpolated linearly between grid points; NB201's widths are fixed, so its parts are exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from torch import nn

from fne.genotopheno.cells import SearchCell
from fne.genotopheno.genotype import Cell, Edge, parse
from fne.genotopheno.nb201_network import NB201_EDGES, NB201_OPS, InferCell, ResNetBasicblock
from fne.genotopheno.network import stage_layout
from fne.genotopheno.ops import DARTS_OPS, FactorizedReduce, Identity, ReLUConvBN
from fne.genotopheno.search_space import SearchSpace
from fne.registry import Registry

# Channel grids of the DARTS parts: a stage's width C (the grammar's 10..99), and a cell's input C_in, the
# stem's 3 w0 or a cell's concatenation 4 w (30..396). Points are denser where small widths change fast.
WIDTH_GRID = (10, 16, 24, 32, 48, 64, 80, 99)
INPUT_WIDTH_GRID = (30, 48, 64, 96, 128, 192, 256, 320, 396)
HEAD_CLASSES = 10  # the classifier is measured with 10 outputs: at batch 1 it is one C x classes product
STEM_MULTIPLIER = 3  # Network's default: the stem has 3 w0 channels

Shape = tuple[int, ...]
Term = tuple["Part", float]


@dataclass(frozen=True, order=True)
class Part:
    """One measurable piece at one shape: kind (space/what[/op]), input side, stride and channels."""

    kind: str
    resolution: int  # side of the (square) input in pixels
    C: int  # output channels (0 where the part has none of its own)
    C_in: int = 0  # input channels where they differ from C (0: the same as C)
    stride: int = 1


class LatencyLayout(Protocol):
    """A space's parts (what the table measures) and a genotype's network as a signed sum of them; every part's
    kind starts with the space's name and a slash (the table command finds the layout that builds it so)."""

    def parts(self, space: SearchSpace, image_size: int) -> list[Part]:
        """Every part at every shape the space's search can produce at this input size."""
        ...

    def module(self, part: Part) -> tuple[nn.Module, list[Shape]]:
        """The module a part times and the (batch-1) shapes of its inputs."""
        ...

    def terms(self, space: SearchSpace, genotype: str, image_size: int) -> list[Term]:
        """(part, coefficient) pairs whose weighted latencies sum to the genotype's network's latency."""
        ...


LATENCY_LAYOUTS: Registry[LatencyLayout] = Registry("latency layout")


def half(side: int) -> int:
    """The side after a stride-2 op with 'same' padding: ceil(side / 2)."""
    return (side + 1) // 2


def stage_sides(image_size: int, stages: int) -> list[int]:
    """Input side of every stage: the image, then halved at each reduction."""
    sides = [image_size]
    for _ in range(stages - 1):
        sides.append(half(sides[-1]))
    return sides


class Head(nn.Module):
    """What follows the last cell: optional final activation, global average pooling and the classifier."""

    def __init__(self, C_in: int, final: nn.Module | None = None, num_classes: int = HEAD_CLASSES):
        super().__init__()
        self.final = final if final is not None else nn.Identity()
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_in, num_classes)

    def forward(self, x):
        return self.classifier(self.global_pooling(self.final(x)).flatten(1))


def _identity_cell(nodes: int) -> Cell:
    return Cell(tuple((Edge("skip_connect", 0), Edge("skip_connect", 1)) for _ in range(nodes)))


@LATENCY_LAYOUTS.register("darts")
class DartsLatency:
    """DARTS networks (Network): stem, cells with preprocessing, head; widths interpolated on the grids."""

    def parts(self, space: SearchSpace, image_size: int) -> list[Part]:
        """Stem, ops at both strides, cell frames, preprocessing and head on the width grids."""
        sides = stage_sides(image_size, space.stages)
        parts = [Part("darts/stem", sides[0], C) for C in WIDTH_GRID]
        for name in DARTS_OPS.names:
            parts += [Part(f"darts/op/{name}", side, C) for side in sides for C in WIDTH_GRID]
            parts += [Part(f"darts/op/{name}", side, C, stride=2) for side in sides[:-1] for C in WIDTH_GRID]
        parts += [Part(f"darts/cell_frame/{space.nodes}", side, C) for side in sides for C in WIDTH_GRID]
        for kind, where in (("darts/preprocess", sides), ("darts/factorized_reduce", sides[:-1])):
            parts += [Part(kind, side, C, C_in) for side in where for C in WIDTH_GRID for C_in in INPUT_WIDTH_GRID]
        parts += [Part("darts/head", sides[-1], HEAD_CLASSES, C_in) for C_in in INPUT_WIDTH_GRID]
        return parts

    def module(self, part: Part) -> tuple[nn.Module, list[Shape]]:
        """The DARTS module of a part (ops.py, cells.py) and its input shapes."""
        _, what, *rest = part.kind.split("/")
        side, C, C_in = part.resolution, part.C, part.C_in
        if what == "op":
            return DARTS_OPS.build(rest[0], C, part.stride), [(1, C, side, side)]
        if what == "stem":
            stem = nn.Sequential(nn.Conv2d(3, STEM_MULTIPLIER * C, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(STEM_MULTIPLIER * C))
            return stem, [(1, 3, side, side)]
        if what == "cell_frame":
            cell = SearchCell(_identity_cell(int(rest[0])), C, C, C, False, False)
            cell.preprocess0, cell.preprocess1 = Identity(), Identity()
            return cell, [(1, C, side, side)] * 2
        if what == "preprocess":
            return ReLUConvBN(C_in, C, 1, 1, 0), [(1, C_in, side, side)]
        if what == "factorized_reduce":
            return FactorizedReduce(C_in, C), [(1, C_in, side, side)]
        if what == "head":
            return Head(C_in, num_classes=C), [(1, C_in, side, side)]
        raise KeyError(part.kind)

    def terms(self, space: SearchSpace, genotype: str, image_size: int) -> list[Term]:
        """Stem, every cell of the genotype's own layout (as Network builds it), head."""
        parsed = parse(genotype)
        widths = parsed.widths
        nodes = len(parsed.normal.nodes)
        terms: list[Term] = [(Part("darts/stem", image_size, widths[0]), 1.0)]
        C_pp = C_p = STEM_MULTIPLIER * widths[0]
        side_pp = side_p = image_size
        reduction_prev = False
        for stage, reduction in stage_layout(parsed, None):
            C = widths[stage]
            out = half(side_p) if reduction else side_p
            pre0 = "darts/factorized_reduce" if reduction_prev else "darts/preprocess"
            terms += [(Part(f"darts/cell_frame/{nodes}", out, C), 1.0), (Part(pre0, side_pp, C, C_pp), 1.0),
                      (Part("darts/preprocess", side_p, C, C_p), 1.0)]
            for edge in (edge for node in (parsed.reduce if reduction else parsed.normal).nodes for edge in node):
                stride = 2 if reduction and edge.input < 2 else 1
                terms.append((Part(f"darts/op/{edge.op}", side_p if stride == 2 else out, C, stride=stride), 1.0))
            terms.append((Part("darts/op/skip_connect", out, C), -2.0 * nodes))  # the frame's identity calls
            C_pp, C_p, side_pp, side_p, reduction_prev = C_p, nodes * C, side_p, out, reduction
        terms.append((Part("darts/head", side_p, HEAD_CLASSES, C_p), 1.0))
        return terms


@LATENCY_LAYOUTS.register("nb201")
class NB201Latency:
    """NB201's TinyNetwork: stem, N cells per stage at C, 2C, 4C, two ResNet blocks, head; exact shapes."""

    def parts(self, space: SearchSpace, image_size: int) -> list[Part]:
        """Stem, ops and cell frames at each stage's width and side, the two ResNet blocks, head."""
        widths, sides = self._widths(space), stage_sides(image_size, 3)
        parts = [Part("nb201/stem", image_size, widths[0])]
        for width, side in zip(widths, sides, strict=True):
            parts += [Part(f"nb201/op/{name}", side, width) for name in NB201_OPS.names]
            parts.append(Part("nb201/cell_frame", side, width))
        parts += [Part("nb201/resblock", sides[s - 1], widths[s], widths[s - 1]) for s in (1, 2)]
        parts.append(Part("nb201/head", sides[-1], HEAD_CLASSES, widths[-1]))
        return parts

    def module(self, part: Part) -> tuple[nn.Module, list[Shape]]:
        """The NB201 module of a part (nb201_network.py) and its input shapes."""
        _, what, *rest = part.kind.split("/")
        side, C, C_in = part.resolution, part.C, part.C_in
        if what == "op":
            return NB201_OPS.build(rest[0], C, 1), [(1, C, side, side)]
        if what == "stem":
            return nn.Sequential(nn.Conv2d(3, C, 3, padding=1, bias=False), nn.BatchNorm2d(C)), [(1, 3, side, side)]
        if what == "cell_frame":
            return InferCell(("skip_connect",) * len(NB201_EDGES), C), [(1, C, side, side)]
        if what == "resblock":
            return ResNetBasicblock(C_in, C), [(1, C_in, side, side)]
        if what == "head":
            final = nn.Sequential(nn.BatchNorm2d(C_in), nn.ReLU(inplace=False))
            return Head(C_in, final, num_classes=C), [(1, C_in, side, side)]
        raise KeyError(part.kind)

    def terms(self, space: SearchSpace, genotype: str, image_size: int) -> list[Term]:
        """Stem, N cells per stage (frame plus ops minus identities), the ResNet blocks, head."""
        ops = space.parse(genotype).ops
        widths, sides = self._widths(space), stage_sides(image_size, 3)
        cells = space.layers
        terms: list[Term] = [(Part("nb201/stem", image_size, widths[0]), 1.0)]
        for stage, (width, side) in enumerate(zip(widths, sides, strict=True)):
            if stage:
                terms.append((Part("nb201/resblock", sides[stage - 1], width, widths[stage - 1]), 1.0))
            terms.append((Part("nb201/cell_frame", side, width), float(cells)))
            terms += [(Part(f"nb201/op/{name}", side, width), float(cells)) for name in ops]
            terms.append((Part("nb201/op/skip_connect", side, width), -float(cells * len(ops))))
        terms.append((Part("nb201/head", sides[-1], HEAD_CLASSES, widths[-1]), 1.0))
        return terms

    @staticmethod
    def _widths(space: SearchSpace) -> Sequence[int]:
        return (space.C, 2 * space.C, 4 * space.C)
