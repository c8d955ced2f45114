"""The DARTS cell as an nn.Module, compiled from a genotype `Cell` (DARTS `model.py::Cell._compile`)."""

from __future__ import annotations

import torch
from torch import nn

from fne.genotopheno.genotype import Cell
from fne.genotopheno.ops import DARTS_OPS, FactorizedReduce, Identity, OpRegistry, ReLUConvBN


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability drop_prob and rescale the rest (DARTS/FractalNet drop-path)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x.div(keep) * mask


class SearchCell(nn.Module):
    """One cell: two preprocessed inputs, B nodes that each sum two op outputs, concat of all nodes."""

    def __init__(self, cell: Cell, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool,
                 ops: OpRegistry = DARTS_OPS, affine: bool = True):
        super().__init__()
        self.reduction = reduction
        # The input two cells back is at twice the resolution when the previous cell reduced.
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(C_prev_prev, C, affine)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, 1, 0, affine)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0, affine)
        self.inputs = [edge.input for node in cell.nodes for edge in node]
        self.edges = nn.ModuleList()
        for node in cell.nodes:
            for edge in node:
                stride = 2 if reduction and edge.input < 2 else 1
                self.edges.append(ops.build(edge.op, C, stride, affine))
        self.num_nodes = len(cell.nodes)
        self.multiplier = self.num_nodes
        self.drop_prob = 0.0

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for i in range(self.num_nodes):
            total = None
            for e in (2 * i, 2 * i + 1):
                out = self.edges[e](states[self.inputs[e]])
                if self.training and self.drop_prob > 0.0 and not isinstance(self.edges[e], Identity):
                    out = drop_path(out, self.drop_prob)
                total = out if total is None else total + out
            states.append(total)
        return torch.cat(states[2:], dim=1)
