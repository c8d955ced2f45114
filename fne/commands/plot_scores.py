"""`plot_scores` / `fne plot-scores`: validate the training-free heuristics against ground truth (NAS-Bench-201's
trained accuracies, NAS-Bench-301's DARTS cells)."""

from __future__ import annotations

from pathlib import Path

import click

from fne.atomic import output_file, output_folder
from fne.cli_options import device_option, threads_option
from fne.scoring.aggregation import AGGREGATES
from fne.scoring.fitness import DEFAULT_HEURISTICS

SHARED_DATA = Path("../shared/data")  # where the project's ground-truth tables live, beside the repository


@click.command("plot-scores")
@click.option("--ground-truth", type=click.Path(path_type=Path), default=None,
              help="CSV with one architecture per row and its true accuracy [default: the space's table under "
                   "../shared/data: nb201/nb201_cifar10.csv, nb301/nb301_cifar10_surrogate.csv for darts].")
@click.option("--arch-column", default=None,
              help="Column of architectures [default: the space's, arch_str for nb201, genotype for darts: "
                   "DARTS reference text Genotype(normal=[...], ...) or fne strings].")
@click.option("--accuracy-column", default=None,
              help="Column of true accuracies [default: the space's, cifar10_test for nb201, val_accuracy for darts].")
@click.option("--space", "space_name", default="nb201", show_default=True, help="Search space of the strings.")
@click.option("--compare", "compare_prefixes", multiple=True, default=("naslib_",), show_default=True,
              help="Prefix of table columns holding other methods' scores of the same architectures (higher = "
                   "better), correlated beside fne's; repeatable.")
@click.option("--bootstrap", "resamples", type=click.IntRange(min=0), default=1000, show_default=True,
              help="Bootstrap resamples of the architectures for 95% intervals (0: none).")
@click.option("--sample", type=int, default=1000, show_default=True,
              help="Score a seeded random subset of this many architectures (0: all).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the subset, the image batch and every network init.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Real CIFAR-10 images per probe.")
@click.option("--repeats", type=int, default=1, show_default=True, help="Inits per architecture (averaged).")
@click.option("--heuristics", default=",".join(DEFAULT_HEURISTICS), show_default=True,
              help="Comma-separated registered heuristics to score and rank-combine (the original method's three: "
                   "ntk,linear_regions,grad_corr; with az_expressivity, az_progressivity, az_trainability and "
                   "log_flops, also their AZ-NAS aggregate az_nas).")
@click.option("--aggregate", type=click.Choice(list(AGGREGATES)), default="az_nas", show_default=True,
              help="How rank_combined aggregates the heuristics' ranks (the search's --aggregate).")
@click.option("--width", "C", type=int, default=None, help="Network width C (default: the space's, 16 for NB201).")
@click.option("--layers", type=int, default=None,
              help="Depth: cells per stage for nb201 (default 5), cells in all for darts (default 8, NB301's "
                   "evaluation network with reductions at cells 3 and 6).")
@click.option("--batch-norm", type=click.Choice(["frozen", "eval", "train"]), default="frozen", show_default=True,
              help="BatchNorm semantics of the probe (see fne/scoring/jacobians.py).")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="cifar-10-batches-py folder for the image batch; default: the 1,000 images shipped with fne.")
@device_option
@click.option("--memory-budget-mib", type=float, default=2048.0, show_default=True,
              help="Peak memory of one probe; larger batches are chunked.")
@threads_option
@click.option("--cache", "cache_path", type=click.Path(path_type=Path), default=None,
              help="Score cache (append-only JSON lines; default OUT/score_cache.jsonl): reruns resume from it.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def plot_scores(ground_truth: Path | None, arch_column: str | None, accuracy_column: str | None, space_name: str,
                compare_prefixes: tuple[str, ...], resamples: int, sample: int, seed: int,
                batch_size: int, repeats: int, heuristics: str, aggregate: str, C: int | None, layers: int | None,
                batch_norm: str,
                data_dir: Path | None, device: str, memory_budget_mib: float,
                cache_path: Path | None, out: Path, progress: bool) -> None:
    """Score architectures of a ground-truth CSV with the heuristics and rank-correlate them with accuracy.

    Writes OUT/scores.csv, OUT/correlations.csv (Kendall tau, Spearman rho with 95% bootstrap intervals;
    higher = better predictor) and seaborn scatter plots of every score against accuracy.
    """
    from fne.data.cifar10 import heuristic_labelled_batch
    from fne.genotopheno.spaces import get_space
    from fne.scoring.fitness import FitnessConfig
    from fne.study.score_study import given_columns, load_ground_truth, sample_rows, summarise_errors, validate

    output_folder(out, "--out")
    if cache_path is not None:
        output_file(cache_path, "--cache", overwrite=True)  # an existing cache is appended to, not replaced
    space = get_space(space_name)
    ground_truth, arch_column, accuracy_column = _table_defaults(space, ground_truth, arch_column, accuracy_column)
    table = load_ground_truth(ground_truth, arch_column, accuracy_column, space, C=C, layers=layers,
                              keep_prefixes=compare_prefixes)
    given = given_columns(table, arch_column, accuracy_column)
    table = sample_rows(table, sample or None, seed)
    names = tuple(name.strip() for name in heuristics.split(",") if name.strip())
    build_C, build_layers = space.table_build_size(C, layers)
    config = FitnessConfig(batch_size=batch_size, repeats=repeats, seed=seed, device=device, batch_norm=batch_norm,
                           memory_budget_mib=memory_budget_mib, heuristics=names, C=build_C, layers=build_layers)
    images, labels = heuristic_labelled_batch(data_dir, batch_size, seed)  # labels: for zico's loss
    result = validate(space, table, arch_column, accuracy_column, images, config, out, cache_path, progress,
                      labels=labels, aggregate=aggregate, given=given, resamples=resamples)
    click.echo(result.correlations.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    errors = summarise_errors(result.scores)
    for reason, count in sorted(errors.items(), key=lambda item: -item[1]):
        click.echo(f"{count:5d} x {reason}")
    click.echo(f"wrote {out}/scores.csv, {out}/correlations.csv and {len(result.files) - 2} figures")


def _table_defaults(space, ground_truth: Path | None, arch_column: str | None, accuracy_column: str | None
                    ) -> tuple[Path, str, str]:
    """The ground-truth file and columns, the space's own where the user named none."""
    from fne.errors import ConfigError

    if ground_truth is None:
        if space.ground_truth_file is None:
            raise ConfigError(f"the {space.name} space has no default ground-truth table; name one with --ground-truth")
        ground_truth = SHARED_DATA / space.ground_truth_file
    default_arch, default_accuracy = space.ground_truth_columns
    return ground_truth, arch_column or default_arch, accuracy_column or default_accuracy
