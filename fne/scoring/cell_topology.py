"""Cell topology as a score: how wide and shallow the normal cells are (breadth), from the network itself.

Shu, Wang & Cai ("Understanding Architectures Learnt by Cell-based Neural Architecture Search", ICLR 2020)
trained DARTS-space cells and found that the cells that train fastest and that NAS methods converge to are
wide and shallow: their intermediate nodes read the cell's two inputs directly instead of each other, which
shortens the gradient's path and smooths the loss landscape. Training-free scores measure expressivity at
initialisation, not that trainability (report/heuristics/darts: the residual of the expressivity aggregate
follows exactly this count), so the DARTS space's defaults add it.

cell_breadth is minus the share of the normal cells' edges (ops other than `none`) that read one of the
cell's two inputs; a network without DARTS-style cells (NB201) has it undefined (+inf, with the reason).
"""

from __future__ import annotations

from torch import nn

from fne.genotopheno.cells import SearchCell
from fne.genotopheno.ops import Zero
from fne.scoring.heuristics import HeuristicContext, ScoreUndefined, register_heuristic

CELL_INPUTS = 2  # states 0 and 1 of a DARTS cell are the outputs of the two previous cells


def input_edge_share(model: nn.Module) -> float:
    """Share of the normal cells' non-`none` edges that read a cell input (0..1); ScoreUndefined without any."""
    reading = total = 0
    for cell in model.modules():
        if not isinstance(cell, SearchCell) or cell.reduction:
            continue
        for op, source in zip(cell.edges, cell.inputs, strict=True):
            if isinstance(op, Zero):
                continue
            total += 1
            reading += source < CELL_INPUTS
    if total == 0:
        raise ScoreUndefined("no normal DARTS-style cell with a live edge (cell_breadth is for cell spaces)")
    return reading / total


@register_heuristic("cell_breadth")
def cell_breadth(context: HeuristicContext) -> float:
    """-(share of normal-cell edges reading a cell input): wide, shallow cells train faster (Shu et al. 2020)."""
    return -input_edge_share(context.model)
