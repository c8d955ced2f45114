"""A genotype's latency predicted from the table: the signed sum of its parts' measured latencies.

    predictor = LatencyPredictor(load_table(TableKey.current("cpu", 1)), get_space("darts"), image_size=32)
    predictor.predict_ms("s0s1-...|16.32.64|1.1.1")

Prediction is a pure function of the table and the genotype (no timing, no randomness), so a search that
bounds or minimises it decides the same on a loaded machine as on an idle one. `measure_network` times the
same network end to end with the same timer, which is how report/latency validates the predictor.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fne.deploy.latency_parts import LATENCY_LAYOUTS, LatencyLayout, Part, Term
from fne.deploy.latency_table import LatencyTable
from fne.deploy.timing import DEFAULT_MIN_RUN_TIME, Timing, module_latency
from fne.errors import ConfigError
from fne.genotopheno.search_space import SearchSpace


def layout_of(space: SearchSpace) -> LatencyLayout:
    """The latency layout registered for a space; ConfigError naming the spaces that have one."""
    if space.name not in LATENCY_LAYOUTS:
        raise ConfigError(f"the {space.name} space has no latency layout; latency is predicted for "
                          f"{', '.join(LATENCY_LAYOUTS)} (register one in fne.deploy.latency_parts.LATENCY_LAYOUTS)")
    return LATENCY_LAYOUTS[space.name]()


def space_parts(space: SearchSpace, image_sizes: tuple[int, ...]) -> list[Part]:
    """Every part the space's searches at these input sizes can need, without repeats, in order."""
    parts: dict[Part, None] = {}
    layout = layout_of(space)
    for size in image_sizes:
        parts.update(dict.fromkeys(layout.parts(space, size)))
    return list(parts)


def part_timer(space: SearchSpace, device: torch.device,
               min_run_time: float = DEFAULT_MIN_RUN_TIME) -> Callable[[Part], tuple[float, float]]:
    """part -> (median ms, iqr ms): the part's module built by the space's layout and timed on `device`."""
    layout = layout_of(space)

    def measure(part: Part) -> tuple[float, float]:
        module, shapes = layout.module(part)
        timing = module_latency(module, shapes, device, min_run_time)
        return timing.median_ms, timing.iqr_ms

    return measure


class LatencyPredictor:
    """Batch-1 latency of a space's genotypes on the table's device, from the table alone (cached per genotype)."""

    def __init__(self, table: LatencyTable, space: SearchSpace, image_size: int = 32):
        self.table, self.space, self.image_size = table, space, image_size
        self.layout = layout_of(space)
        self._cache: dict[str, float] = {}

    def terms(self, genotype: str) -> list[Term]:
        """The genotype's network as (part, coefficient) pairs."""
        return self.layout.terms(self.space, genotype, self.image_size)

    def predict_ms(self, genotype: str) -> float:
        """Predicted ms of one batch-1 forward of the genotype's own network."""
        if genotype not in self._cache:
            self._cache[genotype] = sum(coefficient * self.table.lookup(part)
                                        for part, coefficient in self.terms(genotype))
        return self._cache[genotype]


def searched_network(space: SearchSpace, genotype: str, num_classes: int = 10) -> nn.Module:
    """The network a latency prediction is of: the genotype's own widths and cells, no auxiliary head, eval mode."""
    with torch.random.fork_rng(devices=[]):
        return space.build(genotype, num_classes=num_classes, seed=0).eval()


def measure_network(model: nn.Module, image_size: int, device: torch.device, batch: int = 1,
                    min_run_time: float = DEFAULT_MIN_RUN_TIME) -> Timing:
    """End-to-end latency of one forward of `batch` images of image_size x image_size, with the table's timer."""
    return module_latency(model, [(batch, 3, image_size, image_size)], device, min_run_time)
