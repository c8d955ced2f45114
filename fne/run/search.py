"""A whole search run: the ask/tell loop driven with an evaluator, recorded into a run directory.

    result = run_search(SearchConfig(space="nb201"), "runs/nb201")      # or resume="runs/nb201"

Each generation: `Evolution.ask()` breeds candidates, the evaluator scores them (any `Evaluator`: in
process, a dask cluster, or a function in tests), `Evolution.tell()` selects the next population (Pareto
survival, or DARTS tournaments every `tournament_every`-th generation; loop.py, survival.py), and the
`RunRecorder` writes the generation and its checkpoint (recorder.py). The final best individual comes
from everything evaluated or the final population (`SearchConfig.final_pick`): the winner of a short
training of its `finalists` best by the aggregate (`rank_combined`; finalists.py), or with no finalists
the smallest aggregate; it is written to best.json and flagged in final_population.csv.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fne.data.batches import probe_positions, to_tensors
from fne.data.cifar10 import train_val_split
from fne.data.dataset import Dataset
from fne.data.ground_truth import accuracy_by_genotype, read_ground_truth
from fne.data.source import data_record, open_data
from fne.deploy.latency_model import LatencyPredictor
from fne.deploy.latency_search import latency_fits, search_predictor, table_record, with_latency
from fne.device import resolve_device
from fne.errors import ConfigError
from fne.evolution.budget import BudgetCheck, SizeBudget
from fne.evolution.individual import Candidate, Individual, from_row, scored, table_of
from fne.evolution.loop import Evolution
from fne.evolution.seeds import derived_seed
from fne.evolution.survival import ParetoSurvival, TournamentSurvival
from fne.genotopheno.spaces import SearchSpace, get_space
from fne.logs import run_log
from fne.run import rundir
from fne.run.config import (
    SearchConfig,
    config_from_dict,
    run_config_dict,
)
from fne.run.distributed import make_evaluator
from fne.run.evaluation import Evaluator
from fne.run.final_pick import final_pick, picked_by_finalists
from fne.run.progress import ProgressBars
from fne.run.recorder import RunRecorder
from fne.run.stage_times import Stopwatch
from fne.training.alone import run_alone_tournament
from fne.training.tournament import TournamentResult, run_tournament

log = logging.getLogger(__name__)

__all__ = ["SearchConfig", "SearchResult", "config_from_dict", "default_evaluator", "final_pick", "picked_by_finalists",
           "run_search"]


@dataclass(frozen=True)
class SearchResult:
    """What a run returns: its folder, the history, the final population and the best individual."""

    run_dir: Path
    history: pd.DataFrame
    population: pd.DataFrame
    best: dict[str, Any] | None  # None while the run is unfinished
    completed_generation: int
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)


def default_evaluator(config: SearchConfig, workers: int = 0, scheduler: str | None = None,
                      progress: bool = False, dataset: Dataset | None = None) -> Evaluator:
    """The evaluator a config asks for: in process by default, or on dask workers / a scheduler; its rows carry
    the predicted latency_ms when the config bounds or minimises latency.

    `dataset` is the run's opened data (run_search opens it once); None opens config.data here.
    """
    if dataset is None:
        dataset = open_data(config.data, config.image_size)
    evaluator = make_evaluator(config.space, None, dataset, config.fitness_config(dataset.num_classes),
                               workers=workers, scheduler=scheduler, progress=progress)
    return with_latency(evaluator, search_predictor(config))


def load_ground_truth(space: SearchSpace, path: str | Path) -> dict[str, float]:
    """Canonical genotype -> true accuracy from a CSV with arch_str and cifar10_test (fne.data.ground_truth)."""
    return accuracy_by_genotype(read_ground_truth(path, space))


def tournament_tensors(config: SearchConfig, dataset: Dataset | None = None
                       ) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """(train, held_out) image/label tensors of the tournaments: a seeded half/half split of the images."""
    if dataset is None:
        dataset = open_data(config.data, config.image_size)
    labels = dataset.train_labels
    positions = np.arange(len(labels))
    if len(labels) > config.tournament_images:  # the class-balanced draw of cifar10.subset
        positions = probe_positions(labels, dataset.num_classes, config.tournament_images, config.seed,
                                    dataset.classes, dataset.path)
    train, held_out = train_val_split(labels[positions], 0.5, config.seed)
    device = resolve_device(config.device)
    return to_tensors(dataset, positions[train], "train", device), to_tensors(dataset, positions[held_out], "train",
                                                                              device)


def build_evolution(space: SearchSpace, config: SearchConfig, listener: Any = None,
                    latency: LatencyPredictor | None = None, dataset: Dataset | None = None) -> Evolution:
    """The loop of a config: Pareto survival, tournaments every tournament_every-th generation, its ranking, and
    its budgets (size, and latency predicted by `latency`, by default the config's table).

    `dataset`, the run's opened data, feeds the tournaments (None: opened when the first one plays).
    """
    tournament = None
    if config.tournament_every:
        images = functools.cache(lambda: tournament_tensors(config, dataset))  # loaded when the first one plays
        settings, device = config.tournament_config(), resolve_device(config.device)
        runner = run_alone_tournament if settings.judge == "training_speed" else run_tournament

        def play(genotypes: Sequence[str], generation: int, number: int) -> TournamentResult:
            train, held_out = images()
            return runner(space, list(genotypes), train, held_out, settings,
                          derived_seed(config.seed, generation, number), device)

        tournament = TournamentSurvival(settings.size, play, config.objectives, listener,
                                        ranking=config.ranking(), ranked=config.heuristics,
                                        prior_weight=config.tournament_prior, tie_band=config.tournament_tie_band)
    budget = SizeBudget(config.max_params, config.max_flops)
    checks = [BudgetCheck(space, budget).fits] if budget.active else []
    if config.max_latency_ms:
        checks.append(latency_fits(latency or search_predictor(config), config.max_latency_ms))
    fits = (lambda genotype: all(check(genotype) for check in checks)) if checks else None
    return Evolution(space, config.loop_config(), ParetoSurvival(config.objectives, config.ranking()), tournament,
                     config.ranking(), fits)


def check_table(config: SearchConfig, config_dict: dict[str, Any]) -> None:
    """Warn when a resumed run's latency table is not the one it started with (predictions may differ)."""
    recorded = config_dict.get("latency_table")
    if recorded and recorded.get("sha256") != table_record(config)["sha256"]:
        log.warning("the latency table %s changed since the run started: new candidates' latencies come from the "
                    "changed table", recorded.get("path"))


def score_candidates(candidates: Sequence[Candidate], evaluator: Evaluator, heuristics: Sequence[str],
                     truth: Mapping[str, float] | None = None, bars: ProgressBars | None = None) -> list[Individual]:
    """Score candidates with the evaluator (in chunks of its chunk_size) into Individuals."""
    genotypes = [c.genotype for c in candidates]
    size = getattr(evaluator, "chunk_size", None) or max(1, len(genotypes))
    frames = []
    for start in range(0, len(genotypes), size):
        frames.append(evaluator.evaluate(genotypes[start:start + size]))
        if bars is not None:
            bars.scored(frames[-1])
    rows = pd.concat(frames, ignore_index=True).to_dict("records") if frames else []
    return [scored(c, row, heuristics, truth.get(c.genotype, math.nan) if truth else math.nan)
            for c, row in zip(candidates, rows, strict=True)]


def run_search(config: SearchConfig, out: str | Path | None = None, *, resume: str | Path | None = None,
               evaluator: Evaluator | None = None, progress: bool = True, stop_after: int | None = None,
               workers: int = 0, scheduler: str | None = None) -> SearchResult:
    """Start a search in the new folder `out`, or continue the run in `resume`; returns the run's result.

    The run opens its data once and hands the Dataset to its evaluator (in process, or `workers` local dask
    processes, or the cluster at `scheduler`, unless `evaluator` is given), tournaments and finalists.
    """
    if (out is None) == (resume is None):
        raise ConfigError("give exactly one of --out RUN_DIR (a new run) or --resume RUN_DIR")
    checkpoint = None
    if resume is not None:
        run_dir = Path(resume)
        config_dict = rundir.read_config(run_dir)
        config = config_from_dict(config_dict)
        checkpoint = rundir.read_checkpoint(run_dir, config_dict)
    else:
        run_dir, config_dict = Path(out), run_config_dict(config)
    space = get_space(config.space)
    # Inputs (space, ground truth, data folder) are checked before a new folder is made.
    truth = load_ground_truth(space, config.ground_truth) if config.ground_truth else None
    open_data.cache_clear()  # each run opens its data afresh: a folder changed since is seen as changed
    dataset = open_data(config.data, config.image_size)  # DataError (bad data) before any folder is made
    latency = search_predictor(config)  # DeployError (no or a corrupt latency table) before any folder too
    if resume is not None:
        rundir.check_dataset(run_dir, config_dict, dataset)
        check_table(config, config_dict)
    else:
        config_dict = run_config_dict(config, data_record(dataset))
        if latency is not None:
            config_dict["latency_table"] = table_record(config)
    created = resume is None and not run_dir.exists()
    if resume is None:
        rundir.prepare_new_run(run_dir)  # the recorder writes config.json into it
    owned = evaluator is None
    try:
        if evaluator is None:
            evaluator = default_evaluator(config, workers, scheduler, progress and bool(workers or scheduler),
                                          dataset)
        evaluator = with_latency(evaluator, latency)
        with run_log(run_dir):
            return _drive(config, space, run_dir, config_dict, checkpoint, evaluator, truth, progress, stop_after,
                          latency, dataset)
    except BaseException:
        if resume is None and not (run_dir / "checkpoint.json").exists():
            rundir.remove_unstarted_run(run_dir, created)  # nothing completed: no stub blocks a retry
        raise
    finally:
        if owned and evaluator is not None:
            evaluator.close()


def _drive(config: SearchConfig, space: SearchSpace, run_dir: Path, config_dict: dict[str, Any],
           checkpoint: dict[str, Any] | None, evaluator: Evaluator, truth: Mapping[str, float] | None,
           progress: bool, stop_after: int | None, latency: LatencyPredictor | None,
           dataset: Dataset) -> SearchResult:
    recorder = RunRecorder(run_dir, config, config_dict)
    evaluated: list[Individual] = []
    bars = ProgressBars(config.generations, 0, config.heuristics, progress)
    evolution = build_evolution(space, config, bars, latency, dataset)
    if checkpoint is not None:
        state = recorder.restore(checkpoint)
        evolution.restore(state.generation, state.next_id, state.population, state.seen)
        evaluated = [from_row(row, config.heuristics) for row in state.history.to_dict("records")]
        bars.bar.update(state.generation + 1)
        log.info("resuming %s after generation %d", run_dir, state.generation)
    else:
        log.info("new %s run in %s (seed %d)", config.space, run_dir, config.seed)
    last = config.generations if stop_after is None else min(stop_after, config.generations)
    try:
        while evolution.generation < last:
            evaluated.extend(_generation(evolution, evaluator, recorder, bars, truth))
    finally:
        bars.close()
    best = None
    if evolution.done:
        with recorder.stages.measure(evolution.generation + 1, "final_pick"):
            final, best, finalists = final_pick(config, evolution.population, evaluated, space, progress,
                                                    dataset)
        recorder.finish(final, best, finalists)
        log.info("CPU seconds by stage: %s", ", ".join(f"{k} {v:.1f}" for k, v in recorder.stages.totals().items()))
        accuracy = "" if np.isnan(best.get("true_accuracy", np.nan)) else f", true accuracy {best['true_accuracy']}%"
        log.info("best by %s: %s (id %s, rank_combined %s%s)", config.aggregate, best["genotype"], best["id"],
                 best["rank_combined"], accuracy)
    population = rundir.read_table(run_dir / ("final_population.csv" if best else "population.csv"))
    return SearchResult(run_dir, rundir.read_table(run_dir / "history.csv"), population, best,
                        evolution.generation, rundir.read_table(run_dir / "timings.csv"))


def _generation(evolution: Evolution, evaluator: Evaluator, recorder: RunRecorder, bars: ProgressBars,
                truth: Mapping[str, float] | None) -> list[Individual]:
    config = evolution.config
    start = time.perf_counter()
    watch = Stopwatch()
    candidates = evolution.ask()
    generation = evolution.generation + 1
    recorder.stages.add(generation, "breeding", watch)  # the size budget builds every candidate it checks
    heuristics = list(config.heuristics)
    current = table_of(evolution.population, heuristics) if evolution.population else None
    bars.start_scoring(generation, len(candidates), current[heuristics].min() if current is not None else None)
    with recorder.stages.measure(generation, "scoring"):
        children = score_candidates(candidates, evaluator, heuristics, truth, bars) if candidates else []
    bars.end_scoring()
    evaluation_seconds = time.perf_counter() - start
    watch = Stopwatch()  # restarted: the selection's own time
    outcome = evolution.tell(children)
    recorder.stages.add(generation, "tournaments" if outcome.selection.kind == "tournament" else "pareto", watch)
    timing = {"seconds": time.perf_counter() - start, "evaluations": len(children),
              "evaluation_seconds": evaluation_seconds, "tournament_seconds": outcome.selection.seconds}
    recorder.on_generation(outcome, timing)
    best = table_of(outcome.population, heuristics)[heuristics].min()
    bars.on_generation(outcome, best)
    log.info("generation %d (%s): %d evaluated in %.1f s, tournaments %.1f s; best %s", generation,
             outcome.selection.kind, len(children), evaluation_seconds, outcome.selection.seconds,
             ", ".join(f"{k}={v:.4g}" for k, v in best.items()))
    return children
