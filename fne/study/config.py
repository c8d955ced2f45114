"""The settings of a score study (`plot_scores` / `fne plot-scores`), each field declaring its option once."""

from __future__ import annotations

from dataclasses import dataclass, field

from fne.config_meta import cli, data_field, image_size_field
from fne.scoring.aggregation import AGGREGATES

BATCH_NORMS = ("frozen", "eval", "train")  # BatchNorm semantics of the probe (fne/scoring/jacobians.py)


@dataclass(frozen=True)
class ScoreStudyConfig:
    """Which ground-truth table, which architectures of it, and how they are scored and correlated.

    None for the table and its columns means the space's own (`SearchSpace.ground_truth_file`,
    `ground_truth_columns`), resolved by the command under ../shared/data.
    """

    ground_truth: str | None = field(default=None, metadata=cli(
        "CSV with one architecture per row and its true accuracy [default: the space's table under "
        "../shared/data: nb201/nb201_cifar10.csv, nb301/nb301_cifar10_surrogate.csv for darts].", path=True))
    arch_column: str | None = field(default=None, metadata=cli(
        "Column of architectures [default: the space's, arch_str for nb201, genotype for darts: "
        "DARTS reference text Genotype(normal=[...], ...) or fne strings]."))
    accuracy_column: str | None = field(default=None, metadata=cli(
        "Column of true accuracies [default: the space's, cifar10_test for nb201, val_accuracy for darts]."))
    space: str = field(default="nb201", metadata=cli("Search space of the strings."))
    compare_prefixes: tuple[str, ...] = field(default=("naslib_",), metadata=cli(
        "Prefix of table columns holding other methods' scores of the same architectures (higher = "
        "better), correlated beside fne's; repeatable.", flag="--compare", multiple=True))
    resamples: int = field(default=1000, metadata=cli(
        "Bootstrap resamples of the architectures for 95% intervals (0: none).", flag="--bootstrap", min=0))
    sample: int = field(default=1000, metadata=cli(
        "Score a seeded random subset of this many architectures (0: all)."))
    seed: int = field(default=0, metadata=cli("Seed of the subset, the image batch and every network init."))
    batch_size: int = field(default=64, metadata=cli("Real CIFAR-10 images per probe."))
    repeats: int = field(default=1, metadata=cli("Inits per architecture (averaged)."))
    heuristics: tuple[str, ...] | None = field(default=None, metadata=cli(
        "Comma-separated registered heuristics to score and rank-combine (default: the space's, as its search "
        "ranks; the original method's three: ntk,linear_regions,grad_corr; with az_expressivity, "
        "az_progressivity, az_trainability and log_flops, also their AZ-NAS aggregate az_nas).", per_space=True))
    aggregate: str = field(default="az_nas", metadata=cli(
        "How rank_combined aggregates the heuristics' ranks (the search's --aggregate).",
        choices=lambda: tuple(AGGREGATES)))
    C: int | None = field(default=None, metadata=cli("Network width C (default: the space's, 16 for NB201).",
                                                     flag="--width"))
    layers: int | None = field(default=None, metadata=cli(
        "Depth: cells per stage for nb201 (default 5), cells in all for darts (default 8, NB301's "
        "evaluation network with reductions at cells 3 and 6)."))
    batch_norm: str = field(default="frozen", metadata=cli(
        "BatchNorm semantics of the probe (see fne/scoring/jacobians.py).", choices=BATCH_NORMS))
    data: str | None = data_field()  # the probe batch's images; the ground truth's accuracies are CIFAR-10's
    image_size: int = image_size_field()
    device: str = field(default="auto", metadata=cli("auto (CUDA when available), cpu, cuda or cuda:N.",
                                                     device=True))
    memory_budget_mib: float = field(default=2048.0, metadata=cli(
        "Peak memory of one probe; larger batches are chunked."))
