"""A genotype's latency predicted from the table: the signed sum of its parts, calibrated on whole networks.

    predictor = LatencyPredictor(load_table(TableKey.current("cpu", 1)), get_space("darts"), image_size=32)
    predictor.predict_ms("s0s1-...|16.32.64|1.1.1")

A network is slower than the sum of its parts timed alone: timed alone, a part's input and weights stay in
the cache between calls, while the network streams every cell's states through it (nn-Meter, Zhang et al.,
MobiSys 2021, models such effects per kernel). So the table also times `REFERENCE_NETWORKS` whole networks
of seeded random cells of each space, in the same shuffled passes as the parts (their rows have the kind
`<space>/network/<genotype>`), and a prediction is the sum of parts times the median of measured / summed
over those networks. Prediction is a pure function of the table and the genotype (no timing, no
randomness), so a search that bounds or minimises it decides the same on a loaded machine as on an idle one.
`measure_network` times a network end to end with the same timer, which is how report/latency validates it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from fne.deploy.latency_parts import LATENCY_LAYOUTS, LatencyLayout, Part, Term
from fne.deploy.latency_table import LatencyTable
from fne.deploy.timing import DEFAULT_MIN_RUN_TIME, Timing, module_latency
from fne.errors import ConfigError
from fne.genotopheno.search_space import SearchSpace

REFERENCE_NETWORKS = 10  # whole networks per space and image size that calibrate the sum of parts
REFERENCE_SEED = 20_251_206  # their cells: not the seeds report/latency validates on
WIDTH_RANGE = (10, 99)  # widths of the reference networks' stages (the DARTS grammar's)


def layout_of(space: SearchSpace) -> LatencyLayout:
    """The latency layout registered for a space; ConfigError naming the spaces that have one."""
    if space.name not in LATENCY_LAYOUTS:
        raise ConfigError(f"the {space.name} space has no latency layout; latency is predicted for "
                          f"{', '.join(LATENCY_LAYOUTS)} (register one in fne.deploy.latency_parts.LATENCY_LAYOUTS)")
    return LATENCY_LAYOUTS[space.name]()


def reference_genotypes(space: SearchSpace, count: int = REFERENCE_NETWORKS, seed: int = REFERENCE_SEED) -> list[str]:
    """`count` distinct seeded random genotypes of the space, each stage at a random width where widths vary."""
    rng, genotypes = np.random.default_rng(seed), []
    while len(genotypes) < count:
        genotype = space.sample(rng)
        if space.has_widths:
            for stage in range(len(space.stage_widths(genotype))):
                width = int(rng.integers(WIDTH_RANGE[0], WIDTH_RANGE[1] + 1))
                genotype = space.with_stage_width(genotype, stage, width)
        if genotype not in genotypes:
            genotypes.append(genotype)
    return genotypes


def network_part(space: SearchSpace, genotype: str, image_size: int) -> Part:
    """The table row of a whole reference network: kind `<space>/network/<genotype>`."""
    return Part(f"{space.name}/network/{genotype}", image_size, 0)


def space_parts(space: SearchSpace, image_sizes: tuple[int, ...]) -> list[Part]:
    """Every part the space's searches at these input sizes can need, and its reference networks, once each."""
    parts: dict[Part, None] = {}
    layout = layout_of(space)
    for size in image_sizes:
        parts.update(dict.fromkeys(layout.parts(space, size)))
        parts.update(dict.fromkeys(network_part(space, genotype, size) for genotype in reference_genotypes(space)))
    return list(parts)


def part_timer(space: SearchSpace, device: torch.device,
               min_run_time: float = DEFAULT_MIN_RUN_TIME) -> Callable[[Part], tuple[float, float]]:
    """part -> (median ms, iqr ms): the part's module (or reference network) built and timed on `device`."""
    layout = layout_of(space)
    prefix = f"{space.name}/network/"

    def measure(part: Part) -> tuple[float, float]:
        if part.kind.startswith(prefix):
            model = searched_network(space, part.kind[len(prefix):])
            timing = measure_network(model, part.resolution, device, min_run_time=min_run_time)
        else:
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
        self.scale = self._calibration()

    def terms(self, genotype: str) -> list[Term]:
        """The genotype's network as (part, coefficient) pairs."""
        return self.layout.terms(self.space, genotype, self.image_size)

    def sum_of_parts_ms(self, genotype: str) -> float:
        """The uncalibrated prediction: the parts' latencies summed with their coefficients."""
        return sum(coefficient * self.table.lookup(part) for part, coefficient in self.terms(genotype))

    def predict_ms(self, genotype: str) -> float:
        """Predicted ms of one batch-1 forward of the genotype's own network."""
        if genotype not in self._cache:
            self._cache[genotype] = self.scale * self.sum_of_parts_ms(genotype)
        return self._cache[genotype]

    def _calibration(self) -> float:
        """Median of measured / summed over the table's reference networks at this size (1 where it has none)."""
        prefix = f"{self.space.name}/network/"
        ratios = [ms / self.sum_of_parts_ms(part.kind[len(prefix):]) for part, (ms, _) in self.table.rows.items()
                  if part.kind.startswith(prefix) and part.resolution == self.image_size]
        return statistics.median(ratios) if ratios else 1.0


def searched_network(space: SearchSpace, genotype: str, num_classes: int = 10) -> nn.Module:
    """The network a latency prediction is of: the genotype's own widths and cells, no auxiliary head, eval mode."""
    with torch.random.fork_rng(devices=[]):
        return space.build(genotype, num_classes=num_classes, seed=0).eval()


def measure_network(model: nn.Module, image_size: int, device: torch.device, batch: int = 1,
                    min_run_time: float = DEFAULT_MIN_RUN_TIME) -> Timing:
    """End-to-end latency of one forward of `batch` images of image_size x image_size, with the table's timer."""
    return module_latency(model, [(batch, 3, image_size, image_size)], device, min_run_time)
