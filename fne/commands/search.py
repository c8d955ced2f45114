"""`fne search` (and `python NAS_on_cifar10.py`): the evolutionary search, from options to a run directory."""

from __future__ import annotations

import logging
import time
from dataclasses import fields
from pathlib import Path

import click
from click.core import ParameterSource

from fne.atomic import output_folder
from fne.cli_options import config_options, config_values, flag_of, param_of, threads_option
from fne.errors import ConfigError
from fne.logs import VERBOSITY_KEY, configure_console
from fne.run.config import SearchConfig

# Input files and folders: stored absolute in config.json (a relative path would mean another file on --resume).
INPUT_PATHS = ("data", "ground_truth")
log = logging.getLogger(__name__)


def _default_out(space: str, seed: int) -> Path:
    return Path("runs") / f"{space}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"


@click.command()
@config_options(SearchConfig)
@threads_option
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="New run directory (must not exist or be empty); default runs/<space>-seed<seed>-<time>.")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this directory after its last completed generation (with its saved "
                   "settings; the result equals an uninterrupted run).")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True,
              help="Score on a local dask cluster of N processes (0: in this process).")
@click.option("--scheduler", default=None, help="Score on the dask cluster at this address (tcp://HOST:PORT).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars on stderr.")
@click.option("-v", "--verbose", count=True, help="Log to the console too (-v info, -vv debug).")
@click.pass_context
def search(ctx: click.Context, out: Path | None, resume: Path | None, workers: int, scheduler: str | None,
           progress: bool, verbose: int, **options) -> None:
    """Evolutionary NAS on CIFAR-10 with training-free scores, Pareto selection and DARTS tournaments.

    Writes a run directory (config.json, history.csv, population and Pareto-front tables, timings,
    tournaments, final_population.csv, best.json, checkpoint.json, search.log). The defaults finish in
    about 15 minutes on a 2-core CPU.
    """
    from fne.data.ground_truth import file_sha256
    from fne.data.source import absolute_spec
    from fne.device import resolve_device
    from fne.run.rundir import read_config
    from fne.run.search import config_from_dict, run_search

    configure_console(max(verbose, ctx.meta.get(VERBOSITY_KEY, 0)))
    values = config_values(SearchConfig, options)
    values["data"], values["ground_truth"] = absolute_spec(values["data"]), _absolute(values["ground_truth"])
    if resume is not None:
        if out is not None:
            raise ConfigError("give --out for a new run or --resume for an old one, not both")
        saved = read_config(resume)
        config = config_from_dict(saved)
        _check_resume_options(ctx, config, values)
        _warn_if_inputs_changed(saved, resume)
        output_folder(resume, "--resume")
    else:
        if values["ground_truth"] and Path(values["ground_truth"]).is_file():
            values["ground_truth_sha256"] = file_sha256(values["ground_truth"])
        config = SearchConfig(**values)
        out = out if out is not None else _default_out(config.space, config.seed)
        output_folder(out, "--out")
    # Inputs are checked before run_search makes the run folder: bad input leaves no stub behind that would
    # block a retry with the same --out.
    resolve_device(config.device)
    start = time.perf_counter()
    result = run_search(config, out, resume=resume, progress=progress, workers=workers, scheduler=scheduler)
    minutes = (time.perf_counter() - start) / 60.0
    best = result.best
    click.echo(f"run directory: {result.run_dir}  ({minutes:.1f} min)")
    if best is not None:
        scores = ", ".join(f"{name}={best[name]:.4g}" for name in config.heuristics)
        accuracy = best.get("true_accuracy")
        truth = f", true accuracy {accuracy:.2f}%" if accuracy is not None and accuracy == accuracy else ""
        click.echo(f"best (rank-combined): {best['genotype']}  params={best['params']:,}  {scores}{truth}")


def _check_resume_options(ctx: click.Context, config, values: dict) -> None:
    """Options given on the command line with --resume must agree with the run's saved settings."""
    from fne.data.source import absolute_spec

    for field_ in fields(SearchConfig):
        if "cli" not in field_.metadata or ctx.get_parameter_source(param_of(field_)) not in (
                ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            continue
        saved = getattr(config, field_.name)
        given = values[field_.name]
        if field_.name in INPUT_PATHS:  # runs made before paths were stored absolute hold them as typed
            saved = absolute_spec(saved) if field_.name == "data" else _absolute(saved)
        if (tuple(given) if isinstance(saved, tuple) else given) != saved:
            option = flag_of(field_)
            raise ConfigError(f"{option} {given} differs from the resumed run's {saved}; --resume continues with "
                              "the run's saved settings (leave the option out)")


def _absolute(path: str | Path | None) -> str | None:
    """An input path as config.json stores it: absolute, so --resume from another folder reads the same file."""
    return None if path is None else str(Path(path).expanduser().resolve())


def _warn_if_inputs_changed(saved: dict, run_dir: Path) -> None:
    """Warn when a resumed run's inputs are not what it started with (it goes on, reading them as they are now)."""
    from fne.data.ground_truth import file_sha256

    search = saved.get("search", {})
    for key in INPUT_PATHS:
        stored = search.get(key, search.get("data_dir") if key == "data" else None)
        if stored is not None and stored != "sample" and ":" not in stored and not Path(stored).is_absolute():
            log.warning("%s stores --%s %s relative to the folder it was started in; it is read relative to "
                        "this folder, %s", run_dir / "config.json", key.replace("_", "-"), stored, Path.cwd())
    digest, truth = search.get("ground_truth_sha256"), search.get("ground_truth")
    if digest and truth and Path(truth).is_file() and file_sha256(truth) != digest:
        log.warning("--ground-truth %s changed since the run started (sha256 %s..., now %s...): the true accuracies "
                    "of new individuals come from the changed file", truth, digest[:12], file_sha256(truth)[:12])
