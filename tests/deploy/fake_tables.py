"""Latency tables whose 'latency' of a part is a count that can be checked against the whole network.

Every part's value is its module's parameter count (or FLOPs of one batch-1 forward): the frames and the
identity op have neither, so the table's prediction of a genotype must equal the count of the genotype's own
network, an oracle that checks every part's kind, channels, side and stride against the built network.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from fne.deploy.latency_model import layout_of
from fne.deploy.latency_table import LatencyTable, TableKey
from fne.genotopheno.network import count_parameters
from fne.genotopheno.search_space import SearchSpace

KEY = TableKey("cpu", "test cpu", torch.__version__, 1)


def part_count(space: SearchSpace, part, what: str) -> float:
    """Parameters, or FLOPs of one eval-mode forward, of the part's module."""
    module, shapes = layout_of(space).module(part)
    if what == "params":
        return float(count_parameters(module))
    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*(torch.zeros(*shape) for shape in shapes))
    return float(counter.get_total_flops())


def counting_table(space: SearchSpace, what: str, image_size: int = 32, key: TableKey = KEY,
                   offset: float = 0.0) -> LatencyTable:
    """A table of the space's parts at this image size valued by `part_count` (+ offset: a file needs ms > 0)."""
    table = LatencyTable(key)
    for part in layout_of(space).parts(space, image_size):
        table.add(part, part_count(space, part, what) + offset)
    return table
