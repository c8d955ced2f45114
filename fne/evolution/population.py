"""Ground-truth lookup of a search: canonical genotype -> true accuracy (recorded, never used to select)."""

from __future__ import annotations

from pathlib import Path

from fne.data.ground_truth import accuracy_by_genotype, read_ground_truth
from fne.genotopheno.spaces import SearchSpace


def load_ground_truth(space: SearchSpace, path: str | Path) -> dict[str, float]:
    """Canonical genotype -> true accuracy from a CSV with arch_str and cifar10_test (fne.data.ground_truth)."""
    return accuracy_by_genotype(read_ground_truth(path, space))
