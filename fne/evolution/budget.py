"""Size budgets of a search: candidates whose scored network exceeds `max_params` or `max_flops` are never bred.

A training-free score that rewards size (FLOPs or #params as a ranked term, as AZ-NAS's complexity does
inside NB201's fixed widths) would, in a space whose genotype carries the widths (DARTS), only grow the
network. A budget keeps the search inside a user-set size: the loop skips every founder or child over it
before it is scored, so the budget holds by construction and no evaluation is spent outside it. Sizes are
those of the network the heuristics score (the space's searched network at the genotype's own widths).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fne.genotopheno.batch_norm import without_running_stats
from fne.genotopheno.network import count_flops, count_parameters
from fne.genotopheno.spaces import SearchSpace


@dataclass(frozen=True)
class SizeBudget:
    """Upper bounds on the scored network's size; 0 or None means no bound."""

    max_params: int | None = None
    max_flops: int | None = None

    @property
    def active(self) -> bool:
        """True when some bound is set."""
        return bool(self.max_params) or bool(self.max_flops)


class BudgetCheck:
    """Measures candidates (cached by genotype) and tells whether they fit a budget."""

    def __init__(self, space: SearchSpace, budget: SizeBudget, C: int | None = None, layers: int | None = None):
        self.space, self.budget, self.C, self.layers = space, budget, C, layers
        self.sizes: dict[str, tuple[int, int]] = {}

    def size(self, genotype: str) -> tuple[int, int]:
        """(params, flops) of the scored network (flops -1 when no FLOP bound asks for them)."""
        if genotype not in self.sizes:
            # Sizes need shapes only: on the meta device no weight is drawn or stored, nothing is computed.
            with torch.random.fork_rng(devices=[]), torch.device("meta"), without_running_stats():
                model = self.space.build(genotype, C=self.C, layers=self.layers, seed=0)
            flops = count_flops(model, (1, 3, 32, 32)) if self.budget.max_flops else -1
            self.sizes[genotype] = (count_parameters(model), flops)
        return self.sizes[genotype]

    def fits(self, genotype: str) -> bool:
        """True when the genotype's network is within every bound."""
        if not self.budget.active:
            return True
        params, flops = self.size(genotype)
        return (not self.budget.max_params or params <= self.budget.max_params) and \
            (not self.budget.max_flops or flops <= self.budget.max_flops)
