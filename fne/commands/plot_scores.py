"""`plot_scores` / `fne plot-scores`: validate the training-free heuristics against ground truth (NAS-Bench-201's
trained accuracies, NAS-Bench-301's DARTS cells)."""

from __future__ import annotations

from pathlib import Path

import click

from fne.atomic import output_file, output_folder
from fne.cli_options import config_options, config_values, threads_option
from fne.study.config import ScoreStudyConfig

SHARED_DATA = Path("../shared/data")  # where the project's ground-truth tables live, beside the repository


@click.command("plot-scores")
@config_options(ScoreStudyConfig)
@threads_option
@click.option("--cache", "cache_path", type=click.Path(path_type=Path), default=None,
              help="Score cache (append-only JSON lines; default OUT/score_cache.jsonl): reruns resume from it.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Output folder.")
@click.option("--progress/--no-progress", default=True, show_default=True)
def plot_scores(cache_path: Path | None, out: Path, progress: bool, **options) -> None:
    """Score architectures of a ground-truth CSV with the heuristics and rank-correlate them with accuracy.

    Writes OUT/scores.csv, OUT/correlations.csv (Kendall tau, Spearman rho with 95% bootstrap intervals;
    higher = better predictor) and seaborn scatter plots of every score against accuracy.
    """
    from fne.data.batches import probe_batch
    from fne.data.source import open_data
    from fne.genotopheno.spaces import get_space
    from fne.scoring.fitness import FitnessConfig, space_heuristics
    from fne.study.score_study import given_columns, load_ground_truth, sample_rows, summarise_errors, validate

    study = ScoreStudyConfig(**config_values(ScoreStudyConfig, options))
    C, layers, seed, batch_size = study.C, study.layers, study.seed, study.batch_size
    dataset = open_data(study.data, study.image_size)  # bad data: one DataError line before any output
    output_folder(out, "--out")
    if cache_path is not None:
        output_file(cache_path, "--cache", overwrite=True)  # an existing cache is appended to, not replaced
    space = get_space(study.space)
    ground_truth, arch_column, accuracy_column = _table_defaults(space, study.ground_truth, study.arch_column,
                                                                study.accuracy_column)
    table = load_ground_truth(ground_truth, arch_column, accuracy_column, space, C=C, layers=layers,
                              keep_prefixes=study.compare_prefixes)
    given = given_columns(table, arch_column, accuracy_column)
    table = sample_rows(table, study.sample or None, seed)
    build_C, build_layers = space.table_build_size(C, layers)
    config = FitnessConfig(batch_size=batch_size, repeats=study.repeats, seed=seed, device=study.device,
                           batch_norm=study.batch_norm, memory_budget_mib=study.memory_budget_mib,
                           heuristics=study.heuristics or space_heuristics(space), C=build_C, layers=build_layers,
                           num_classes=dataset.num_classes)
    images, labels = probe_batch(dataset, batch_size, seed)  # labels: for zico's loss
    result = validate(space, table, arch_column, accuracy_column, images, config, out, cache_path, progress,
                      labels=labels, aggregate=study.aggregate, given=given, resamples=study.resamples)
    click.echo(result.correlations.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    errors = summarise_errors(result.scores)
    for reason, count in sorted(errors.items(), key=lambda item: -item[1]):
        click.echo(f"{count:5d} x {reason}")
    click.echo(f"wrote {out}/scores.csv, {out}/correlations.csv and {len(result.files) - 2} figures")


def _table_defaults(space, ground_truth: str | Path | None, arch_column: str | None, accuracy_column: str | None
                    ) -> tuple[Path, str, str]:
    """The ground-truth file and columns, the space's own where the user named none."""
    from fne.errors import ConfigError

    if ground_truth is None:
        if space.ground_truth_file is None:
            raise ConfigError(f"the {space.name} space has no default ground-truth table; name one with --ground-truth")
        ground_truth = SHARED_DATA / space.ground_truth_file
    default_arch, default_accuracy = space.ground_truth_columns
    return Path(ground_truth), arch_column or default_arch, accuracy_column or default_accuracy
