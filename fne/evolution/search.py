"""The (mu + lambda) search: breed, score, select (Pareto or DARTS tournament), write the run directory.

Generation 0 samples `population` distinct genotypes. Every later generation g:

1. draws its randomness from `generation_rng(seed, g)` only (and tournament seeds from (seed, g, t)), so a
   run resumed after generation g - 1 continues exactly as the uninterrupted one;
2. breeds `offspring` children never evaluated before (binary tournament on front and crowding picks the
   two parents; `operators.breed` recombines and self-adapts the strategy, then crosses and mutates);
3. scores the children with the evaluator (the three heuristics, all minimised);
4. selects the next `population`:
   - usually by Pareto survival over parents + children (`selection.survive`: non-dominated fronts on the
     objectives, the overflowing front cut by crowding distance);
   - every `tournament_every`-th generation by DARTS tournaments instead: the children are shuffled into
     groups of `tournament_size`, each group's supernet is trained briefly and its max-alpha child wins
     (tournament.py). The winners enter the next population first (if there are more winners than
     places, the Pareto-best of them); the remaining places go to the parents by Pareto rank and
     crowding. The children that lost their tournament are discarded: the tournament replaced their
     heuristic selection.

The final best architecture is the member of the final population with the smallest sum of its ranks on
the heuristics (TE-NAS's rank combination), written to best.json and flagged in final_population.csv.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from fne.errors import CheckpointError, ConfigError
from fne.evolution import rundir
from fne.evolution.evaluation import Evaluator, FunctionEvaluator, InProcessEvaluator
from fne.evolution.operators import breed, initial_strategy, self_adapt
from fne.evolution.population import (
    best_row,
    decorate,
    load_ground_truth,
    normalise,
    records,
    strategy_of,
)
from fne.evolution.search_config import (
    SearchConfig,
    check_data_dir,
    config_from_dict,
    derived_seed,
    generation_rng,
    run_config_dict,
)
from fne.evolution.selection import binary_tournament, survive
from fne.evolution.tournament import run_tournament, split_into_tournaments
from fne.genotopheno.spaces import SearchSpace, get_space

log = logging.getLogger(__name__)

__all__ = ["Search", "SearchConfig", "SearchResult", "config_from_dict", "run_search"]


@dataclass(frozen=True)
class SearchResult:
    """What a run returns: its folder, the history, the final population and the best individual."""

    run_dir: Path
    history: pd.DataFrame
    population: pd.DataFrame
    best: dict[str, Any] | None  # None while the run is unfinished
    completed_generation: int
    timings: pd.DataFrame = field(default_factory=pd.DataFrame)


class Search:
    """One run in one run directory; `run()` goes from the last checkpoint (or generation 0) to the end."""

    def __init__(self, config: SearchConfig, run_dir: Path, evaluator: Evaluator | None = None,
                 progress: bool = True):
        self.config = config
        self.run_dir = Path(run_dir)
        self.space: SearchSpace = get_space(config.space)
        self.progress = progress
        self.evaluator = evaluator
        self.owns_evaluator = evaluator is None
        self.ground_truth = load_ground_truth(self.space, config.ground_truth) if config.ground_truth else None
        if config.data_dir is not None:
            check_data_dir(config.data_dir)
        self._tournament_data: tuple[Any, Any] | None = None
        self.history = pd.DataFrame()
        self.populations = pd.DataFrame()
        self.timings = pd.DataFrame()
        self.tournaments = pd.DataFrame()
        self.population = pd.DataFrame()
        self.generation = -1
        self.next_id = 0

    # ---- setup ---------------------------------------------------------------------------------------
    def _evaluator(self) -> Evaluator:
        if self.evaluator is None:
            from fne.data.cifar10 import heuristic_batch

            images = heuristic_batch(self.config.data_dir, self.config.batch_size, self.config.seed, "cpu")
            self.evaluator = InProcessEvaluator(self.space, images, self.config.fitness_config())
        return self.evaluator

    def _tournament_tensors(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        if self._tournament_data is None:
            from fne.data.cifar10 import load_cifar10, subset, to_tensor, train_val_split
            from fne.device import resolve_device

            arrays = load_cifar10(self.config.data_dir, "train")
            if len(arrays) > self.config.tournament_images:
                arrays = subset(arrays, self.config.tournament_images, self.config.seed)
            train, held_out = train_val_split(arrays, 0.5, self.config.seed)
            device = resolve_device(self.config.device)
            self._tournament_data = (to_tensor(arrays.take(train), device), to_tensor(arrays.take(held_out), device))
        return self._tournament_data

    def resume_from(self, checkpoint: dict[str, Any]) -> None:
        """Restore the state after the checkpoint's generation and check the tables agree with it."""
        self.generation = int(checkpoint["generation"])
        self.next_id = int(checkpoint["next_id"])
        expected = generation_rng(self.config.seed, self.generation + 1).bit_generator.state
        if checkpoint["numpy_rng"] != json.loads(json.dumps(expected)):
            raise CheckpointError(f"{self.run_dir / 'checkpoint.json'} holds a random state that this run's "
                                  "seed does not produce: it is corrupt or foreign")
        self.population = normalise(pd.DataFrame(checkpoint["population"]), self.config)
        self.history = rundir.read_table(self.run_dir / "history.csv", self.generation)
        if len(self.history) != checkpoint["history_rows"]:
            raise CheckpointError(f"{self.run_dir / 'history.csv'} has {len(self.history)} rows up to "
                                  f"generation {self.generation}, the checkpoint expects "
                                  f"{checkpoint['history_rows']}: the run directory is corrupt")
        self.history = normalise(self.history, self.config)
        for name, column in (("populations", "population_generation"), ("timings", "generation"),
                             ("tournaments", "generation")):
            setattr(self, name, rundir.read_table(self.run_dir / f"{name}.csv", self.generation, column))
        log.info("resuming %s after generation %d", self.run_dir, self.generation)

    # ---- the loop ------------------------------------------------------------------------------------
    def run(self, stop_after: int | None = None) -> SearchResult:
        """Run generations until the configured number (or `stop_after`, to simulate a kill in tests)."""
        last = self.config.generations if stop_after is None else min(stop_after, self.config.generations)
        bar = tqdm(total=self.config.generations + 1, initial=self.generation + 1, desc="generations",
                   unit="gen", disable=not self.progress, dynamic_ncols=True)
        try:
            while self.generation < last:
                self._step(self.generation + 1, bar)
                bar.update(1)
        finally:
            bar.close()
            if self.owns_evaluator and self.evaluator is not None and hasattr(self.evaluator, "close"):
                self.evaluator.close()
        best = self._finish() if self.generation == self.config.generations else None
        return SearchResult(self.run_dir, self.history, self.population, best, self.generation, self.timings)

    def _step(self, generation: int, bar: tqdm) -> None:
        start = time.perf_counter()
        rng = generation_rng(self.config.seed, generation)
        if generation == 0:
            children = self._initial(rng)
        else:
            children = self._breed(rng)
        evaluated, evaluation_seconds = self._evaluate(children, generation)
        tournament_seconds = 0.0
        if generation == 0:  # every founder survives; survival only orders them
            pool, selection = evaluated, "initial"
            selected = list(survive(self._F(pool), len(pool)).selected)
        elif self.config.is_tournament_generation(generation):
            pool = pd.concat([self.population, evaluated], ignore_index=True)
            selected, tournament_seconds = self._tournament_selection(evaluated, generation, rng,
                                                                      offset=len(self.population))
            selection = "tournament"
        else:
            pool = pd.concat([self.population, evaluated], ignore_index=True)
            selected = list(survive(self._F(pool), self.config.population).selected)
            selection = "pareto"
        pool = decorate(pool, self.config, selected)
        new_rows = pool.iloc[len(pool) - len(evaluated):].assign(selection=selection)
        self.history = normalise(pd.concat([self.history, new_rows], ignore_index=True), self.config)
        # The next population in selection order; its own fronts/crowding drive the next mating.
        population = pool.iloc[selected].drop(columns=["selected"]).reset_index(drop=True)
        self.population = decorate(population, self.config, None)
        self.generation = generation
        self.timings = pd.concat([self.timings, pd.DataFrame([{
            "generation": generation, "seconds": time.perf_counter() - start, "evaluations": len(evaluated),
            "evaluation_seconds": evaluation_seconds, "tournament_seconds": tournament_seconds,
            "selection": selection}])], ignore_index=True)
        self._write()
        best = self.population[list(self.config.heuristics)].min()
        bar.set_postfix({name: f"{value:.4g}" for name, value in best.items()}, refresh=False)
        log.info("generation %d (%s): %d evaluated in %.1f s, tournaments %.1f s; best %s", generation, selection,
                 len(evaluated), evaluation_seconds, tournament_seconds,
                 ", ".join(f"{k}={v:.4g}" for k, v in best.items()))

    def _F(self, frame: pd.DataFrame) -> np.ndarray:
        return frame[list(self.config.objectives)].to_numpy(dtype=float)

    def _initial(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        base = initial_strategy(self.space, self.config.initial_mutation_probability, self.config.initial_width_step)
        seen: set[str] = set()
        children = []
        for _ in range(100 * self.config.population):
            if len(children) == self.config.population:
                break
            genotype = self.space.canonical(self.space.sample(rng))
            if genotype in seen:
                continue
            seen.add(genotype)
            # Each founder perturbs the common start once, so selection has strategy variation to act on.
            children.append({"genotype": genotype, "parents": "",
                             "strategy": self_adapt(base, rng, self.config.strategy_learning_rate)})
        if len(children) < 2:
            raise ConfigError(f"the {self.config.space} space gave fewer than 2 distinct genotypes")
        return children

    def _breed(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        seen = set(self.history["genotype"])
        front = self.population["front"].to_numpy(dtype=int)
        crowding = self.population["crowding"].to_numpy(dtype=float)
        strategies = [strategy_of(row) for row in self.population.to_dict("records")]
        children: list[dict[str, Any]] = []
        attempts = 0
        while len(children) < self.config.offspring and attempts < 50 * self.config.offspring:
            attempts += 1
            a, b = binary_tournament(front, crowding, 2, rng)
            parents = [(self.population["genotype"].iat[i], strategies[i]) for i in (a, b)]
            genotype, strategy = breed(self.space, parents, rng, self.config.crossover_probability,
                                       self.config.strategy_learning_rate)
            if genotype in seen:
                continue
            seen.add(genotype)
            ids = self.population["id"].to_numpy()
            children.append({"genotype": genotype, "parents": f"{ids[a]};{ids[b]}", "strategy": strategy})
        if len(children) < self.config.offspring:
            log.warning("only %d new genotypes in %d attempts (the space is nearly exhausted around the population)",
                        len(children), attempts)
        return children

    def _evaluate(self, children: list[dict[str, Any]], generation: int) -> tuple[pd.DataFrame, float]:
        evaluator = self._evaluator()
        genotypes = [child["genotype"] for child in children]
        start = time.perf_counter()
        # In-process evaluators score one genotype per call so the bar moves per network; others get the whole
        # batch at once and parallelise it themselves.
        serial = isinstance(evaluator, InProcessEvaluator | FunctionEvaluator)
        chunks = [[g] for g in genotypes] if serial else [genotypes]
        frames = []
        heuristics = list(self.config.heuristics)
        best = self.population[heuristics].min() if not self.population.empty else None
        with tqdm(total=len(genotypes), desc=f"generation {generation} scoring", unit="eval", leave=False,
                  disable=not self.progress or not genotypes, dynamic_ncols=True) as bar:
            for chunk in chunks:
                frames.append(evaluator.evaluate(chunk))
                latest = frames[-1][heuristics].min()
                best = latest if best is None else np.fmin(best, latest)
                bar.set_postfix({name: f"{value:.4g}" for name, value in best.items()}, refresh=False)
                bar.update(len(chunk))
        scores = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        rows = []
        for child, score in zip(children, scores.to_dict("records"), strict=True):
            row = {"generation": generation, "id": self.next_id, "genotype": child["genotype"],
                   "parents": child["parents"], **{k: v for k, v in score.items() if k != "genotype"},
                   **child["strategy"].as_columns()}
            row["true_accuracy"] = self.ground_truth.get(child["genotype"], np.nan) if self.ground_truth else np.nan
            rows.append(row)
            self.next_id += 1
        return normalise(pd.DataFrame(rows), self.config), time.perf_counter() - start

    def _tournament_selection(self, children: pd.DataFrame, generation: int, rng: np.random.Generator,
                              offset: int) -> tuple[list[int], float]:
        """Pool positions (parents first, children from `offset`) of the next population, and the seconds spent."""
        start = time.perf_counter()
        train, held_out = self._tournament_tensors()
        config = self.config.tournament_config()
        from fne.device import resolve_device

        device = resolve_device(self.config.device)
        winners, records_ = [], []
        groups = split_into_tournaments(len(children), self.config.tournament_size, rng)
        with tqdm(total=len(groups), desc=f"generation {generation} tournaments", unit="supernet", leave=False,
                  disable=not self.progress or not groups, dynamic_ncols=True) as bar:
            for number, group in enumerate(groups):
                if len(group) < 2:  # a lone child (too few new genotypes were found) has no one to play
                    winners.append(group[0])
                    bar.update(1)
                    continue
                genotypes = [children["genotype"].iat[i] for i in group]
                result = run_tournament(self.space, genotypes, train, held_out, config,
                                        derived_seed(self.config.seed, generation, number), device)
                winners.append(group[result.winner])
                ids = [int(children["id"].iat[i]) for i in group]
                records_.append({
                    "generation": generation, "tournament": number, "candidates": ";".join(map(str, ids)),
                    "genotypes": ";".join(genotypes), "alphas": json.dumps(list(result.alphas)),
                    "weights": json.dumps([round(w, 6) for w in result.weights]), "winner": ids[result.winner],
                    "winner_genotype": genotypes[result.winner], "train_loss": result.train_loss,
                    "val_loss": result.val_loss, "seconds": result.seconds})
                log.info("tournament %d.%d: %s -> %s (weights %s)", generation, number, ids, ids[result.winner],
                         records_[-1]["weights"])
                bar.update(1)
        self.tournaments = pd.concat([self.tournaments, pd.DataFrame(records_)], ignore_index=True)
        mu = self.config.population
        if len(winners) > mu:
            keep = survive(self._F(children.iloc[winners]), mu).selected
            winners = [winners[i] for i in keep]
        fill = survive(self._F(self.population), mu - len(winners)).selected
        return [offset + w for w in winners] + list(fill), time.perf_counter() - start

    # ---- output --------------------------------------------------------------------------------------
    def _write(self) -> None:
        directory = self.run_dir
        generation = self.generation
        snapshot = self.population.copy()
        snapshot.insert(0, "population_generation", generation)
        self.populations = pd.concat([self.populations, snapshot], ignore_index=True)
        rundir.atomic_write_csv(directory / "history.csv", self.history)
        rundir.atomic_write_csv(directory / "population.csv", self.population)
        rundir.atomic_write_csv(directory / "populations.csv", self.populations)
        rundir.atomic_write_csv(directory / "pareto_front.csv", self.population[self.population["front"] == 0])
        rundir.atomic_write_csv(directory / "timings.csv", self.timings)
        if not self.tournaments.empty:
            rundir.atomic_write_csv(directory / "tournaments.csv", self.tournaments)
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
        next_rng = generation_rng(self.config.seed, generation + 1)
        rundir.atomic_write_json(directory / "checkpoint.json", {
            "format": rundir.CHECKPOINT_FORMAT, "format_version": rundir.FORMAT_VERSION,
            "config_sha256": rundir.config_digest(config), "seed": self.config.seed, "space": self.config.space,
            "generation": generation, "next_id": self.next_id,
            # The state generation + 1 starts from (it is re-derived from the seed and checked on resume).
            "numpy_rng": next_rng.bit_generator.state,
            "torch_seed": derived_seed(self.config.seed, generation + 1, 0),
            "population": records(self.population), "history_rows": len(self.history)})

    def _finish(self) -> dict[str, Any]:
        final, best = best_row(self.population, self.config)
        rundir.atomic_write_csv(self.run_dir / "final_population.csv", final)
        rundir.atomic_write_json(self.run_dir / "best.json", best, strict=True)
        accuracy = "" if np.isnan(best.get("true_accuracy", np.nan)) else f", true accuracy {best['true_accuracy']}%"
        log.info("best by rank-combined score: %s (id %s, rank sum %s%s)", best["genotype"], best["id"],
                 best["rank_combined"], accuracy)
        self.population = final
        return best


def run_search(config: SearchConfig, out: str | Path | None = None, *, resume: str | Path | None = None,
               evaluator: Evaluator | None = None, progress: bool = True,
               stop_after: int | None = None) -> SearchResult:
    """Start a search in the new folder `out`, or continue the run in `resume`; returns the run's result."""
    if (out is None) == (resume is None):
        raise ConfigError("give exactly one of --out RUN_DIR (a new run) or --resume RUN_DIR")
    checkpoint = None
    if resume is not None:
        run_dir = Path(resume)
        saved = rundir.read_config(run_dir)
        config = config_from_dict(saved)
        checkpoint = rundir.read_checkpoint(run_dir, saved)
    else:
        run_dir = Path(out)
    # Inputs (space, ground truth, data folder) are checked before a new folder is made.
    search = Search(config, run_dir, evaluator, progress)
    if resume is None:
        rundir.prepare_new_run(run_dir)
        rundir.atomic_write_json(run_dir / "config.json", run_config_dict(config))
    run_log = rundir.RunLog(run_dir)
    try:
        if checkpoint is not None:
            search.resume_from(checkpoint)
        else:
            log.info("new %s run in %s (seed %d)", config.space, run_dir, config.seed)
        return search.run(stop_after)
    finally:
        run_log.close()
