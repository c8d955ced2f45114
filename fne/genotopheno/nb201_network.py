"""NAS-Bench-201 phenotype: its five ops, its cell and its fixed macro skeleton (TinyNetwork).

Follows the benchmark's reference code (Dong & Yang, "NAS-Bench-201", ICLR 2020; D-X-Y/AutoDL-Projects
`xautodl/models/cell_operations.py` OPS + ResNetBasicblock, `cell_infers/cells.py` InferCell and
`cell_infers/tiny_network.py` TinyNetwork) so that parameter counts match the benchmark's, and the
state-dict keys (`stem.0`, `cells.3.layers.1.op.1`, `cells.5.conv_a.op.1`, `lastact.0`, `classifier`)
match the reference modules too.

Skeleton at width C and N cells per stage (defaults C=16, N=5)::

    stem (3x3 conv, BN) -> N cells at C -> ResNet block /2 -> N cells at 2C -> ResNet block /2
    -> N cells at 4C -> BN, ReLU -> global average pooling -> linear
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from fne.errors import ConfigError
from fne.genotopheno.batch_norm import batch_norm
from fne.genotopheno.network import seeded
from fne.genotopheno.ops import FactorizedReduce, Identity, OpRegistry, Zero

# Edge order of the benchmark's arch strings: node 1 <- 0; node 2 <- 0, 1; node 3 <- 0, 1, 2.
NB201_EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


class ReLUConvBN(nn.Module):
    """ReLU -> Conv -> BN; as in NB201 the conv has a bias only when the BN is not affine."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True):
        super().__init__()
        # Wrapped in `op` (not subclassing Sequential) to keep the reference state-dict keys.
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=not affine),
            batch_norm(C_out, affine),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


NB201_OPS = OpRegistry("NB201")


@NB201_OPS.register("none", "n")
def _none(C: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


@NB201_OPS.register("skip_connect", "k")
def _skip(C: int, stride: int, affine: bool) -> nn.Module:
    # NB201 cells never stride; the reduce branch only matters for users who build ops directly.
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine)


@NB201_OPS.register("nor_conv_1x1", "c")
def _conv1(C: int, stride: int, affine: bool) -> nn.Module:
    return ReLUConvBN(C, C, 1, stride, 0, affine)


@NB201_OPS.register("nor_conv_3x3", "C")
def _conv3(C: int, stride: int, affine: bool) -> nn.Module:
    return ReLUConvBN(C, C, 3, stride, 1, affine)


@NB201_OPS.register("avg_pool_3x3", "a")
def _avg3(C: int, stride: int, affine: bool) -> nn.Module:
    # count_include_pad=False as in NB201's POOLING: border pixels average only real neighbours.
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


class ResNetBasicblock(nn.Module):
    """The fixed stride-2 block between stages: two ReLUConvBN 3x3 + (AvgPool 2x2, Conv 1x1) shortcut."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, 2, 1, affine)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1, 1, affine)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
            nn.Conv2d(C_in, C_out, kernel_size=1, stride=1, padding=0, bias=False),
        )
        self.out_dim = C_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class InferCell(nn.Module):
    """The NB201 cell: 4 nodes, node j sums one op per earlier node; the output is the last node."""

    def __init__(self, ops: Sequence[str], C: int, registry: OpRegistry = NB201_OPS, affine: bool = True):
        super().__init__()
        if len(ops) != len(NB201_EDGES):
            raise ConfigError(f"an NB201 cell needs {len(NB201_EDGES)} ops, got {len(ops)}")
        self.layers = nn.ModuleList(registry.build(op, C, 1, affine) for op in ops)
        self.edges = NB201_EDGES
        self.out_dim = C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, 4):
            nodes.append(sum(layer(nodes[source])
                             for layer, (to, source) in zip(self.layers, self.edges, strict=True) if to == target))
        return nodes[-1]


class NB201Network(nn.Module):
    """NB201's TinyNetwork: stem, 3 stages of N cells joined by ResNet blocks, BN-ReLU, pooling, linear."""

    def __init__(self, ops: Sequence[str], C: int = 16, N: int = 5, num_classes: int = 10):
        super().__init__()
        self.ops = tuple(ops)
        self.stem = nn.Sequential(nn.Conv2d(3, C, kernel_size=3, padding=1, bias=False), batch_norm(C))
        self.cells = nn.ModuleList()
        C_prev = C
        for stage, width in enumerate((C, 2 * C, 4 * C)):
            if stage:
                self.cells.append(ResNetBasicblock(C_prev, width))
            self.cells.extend(InferCell(self.ops, width) for _ in range(N))
            C_prev = width
        # Which of `cells` are the genotype's cells (the rest are fixed ResNet blocks): what a tournament mixes.
        self.searched_cells = tuple(i for i, cell in enumerate(self.cells) if isinstance(cell, InferCell))
        # NB201 uses ReLU(inplace=True) here; out-of-place gives the same values and is safe for hooks
        # and torch.func transforms.
        self.lastact = nn.Sequential(batch_norm(C_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def blocks(self) -> list[nn.Module]:
        """The feature stages in forward order, stem then every cell: what block-wise scores (AZ-NAS) hook."""
        return [self.stem, *self.cells]

    def set_drop_path(self, prob: float) -> None:
        """Interface parity with the DARTS Network: NB201 trains without drop-path, so this is a no-op."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features after the final BN-ReLU (what the classifier reads)."""
        feature = self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
        return self.global_pooling(self.lastact(feature)).flatten(1)

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Logits and None: NB201 has no auxiliary head."""
        return self.classifier(self.forward_features(x)), None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def build_nb201_network(ops: Sequence[str], C: int = 16, N: int = 5, num_classes: int = 10,
                        seed: int | None = None) -> NB201Network:
    """The NB201 network of a cell's six op names (edge order NB201_EDGES); seed fixes the default init."""
    if C < 1 or N < 1 or num_classes < 1:
        raise ConfigError(f"NB201 network needs positive C, N and num_classes; got C={C}, N={N}, "
                          f"num_classes={num_classes}")
    with seeded(seed):
        return NB201Network(ops, C, N, num_classes)
