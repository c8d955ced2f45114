"""The final pick in the DARTS space: what each decision rule picks from random pools of NB301 cells.

    python experiments/darts_pools.py report/heuristics/darts/all_scores/scores.csv \
        --out report/heuristics/darts/pools --pools 50 --pool-size 100 --top 8

Draws `--pools` seeded pools of `--pool-size` cells from a `plot_scores --space darts` table (every score of
the 600 NB301 cells) and, in each, records the surrogate accuracy of the cell that each rule picks,
as a percentile of its pool and as the gap to the pool's best:

- the pool's best, its median, a random cell (the pool's first draw);
- the largest cell by #params, NASLib's nwot pick (from the table), the single best score;
- each aggregate (AZ-NAS log-rank sum over the pool, as the search ranks a population);
- the finalists' stage on each aggregate's `--top` best: successive halving by training speed (TSE),
  exactly `fne.training.finalists.successive_halving`'s rule, replayed from cached per-cell loss curves;
- with `--tournament`, a DARTS tournament (the search's supernet before issue 24: one supernet over the
  DARTS defaults' best 4 of the pool, trained on the shipped sample) won by the largest alpha, and by
  alpha with the search's heuristic prior (w = 2); each group's alphas cached in `<out>/tournaments.jsonl`.

A cell's loss curve depends only on the cell and the finalists' seed (every finalist trains from the same
initial seed on the same stream of augmented images), so each cell is trained once, only as far as some
pool's halving needs it, and cached in `<out>/curves.jsonl` (a killed run resumes). The accuracies are
read only to judge the picks; no rule sees them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fne.data.cifar10 import load_cifar10
from fne.genotopheno.spaces import get_space
from fne.reporting import markdown_table
from fne.run.config import SearchConfig
from fne.run.search import tournament_tensors
from fne.scoring.aggregation import az_nas_log_rank
from fne.scoring.fitness import DEFAULT_HEURISTICS
from fne.threads import apply_thread_rule
from fne.training.finalists import FinalistConfig, _Run, batch_stream, decide, survivors
from fne.training.tournament import run_tournament

log = logging.getLogger("darts_pools")

AGGREGATES = {  # log-rank sums: the NB201-chosen seven, and the DARTS space's defaults (darts_space.py)
    "NB201's seven": tuple(DEFAULT_HEURISTICS),
    "DARTS defaults": ("az_expressivity", "linear_regions", "cell_breadth"),
}


class Curves:
    """Per-cell training-loss curves of the finalists' recipe, trained on demand and cached as JSON lines."""

    def __init__(self, path: Path, shape: str, config: FinalistConfig):
        self.path, self.shape, self.config = path, shape, config
        self.space = get_space("darts")
        arrays = load_cifar10(None, "train")  # the default run's images: the shipped sample
        self.batches = batch_stream(torch.from_numpy(np.ascontiguousarray(arrays.images)),
                                    torch.from_numpy(arrays.labels.astype(np.int64)), config)
        self.losses: dict[str, list[float]] = {}
        self.trained_seconds = 0.0
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                if len(row["losses"]) > len(self.losses.get(row["cell"], [])):
                    self.losses[row["cell"]] = row["losses"]

    def genotype(self, canonical: str) -> str:
        """The table's cell at the finalists' network shape (the default run's `|16.32.64|1.1.1`)."""
        return "|".join(canonical.split("|")[:2]) + "|" + self.shape

    def tse(self, cell: str, steps: int) -> float:
        """Mean training loss over the first `steps` steps, training (and caching) the cell if needed."""
        if len(self.losses.get(cell, [])) < steps:
            started = time.process_time()
            run = _Run(self.space.build(self.genotype(cell), C=self.config.C, seed=self.config.seed), self.config)
            run.advance(self.batches, steps)
            self.trained_seconds += time.process_time() - started
            self.losses[cell] = run.losses
            with self.path.open("a") as stream:
                stream.write(json.dumps({"cell": cell, "losses": run.losses}) + "\n")
        losses = self.losses[cell][:steps]
        return float(np.mean(losses)) if all(math.isfinite(x) for x in losses) else math.inf


class Tournaments:
    """The alphas of one supernet tournament per group of cells, played with the search's settings, cached."""

    def __init__(self, path: Path, curves: Curves, seed: int):
        self.path, self.curves, self.seed = path, curves, seed
        self.search = SearchConfig(space="darts", seed=seed, device="cpu")
        # The supernet as the search played it until issue 24 (its alphas are what tournaments.jsonl caches).
        self.settings = replace(self.search.tournament_config(), judge="alpha", steps=20, warmup_steps=6)
        self.images = None
        self.alphas: dict[str, list[float]] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                row = json.loads(line)
                self.alphas[row["group"]] = row["alphas"]

    def play(self, cells: list[str]) -> np.ndarray:
        """The alphas of the group (in its order), training the supernet unless cached."""
        key = ";".join(cells)
        if key not in self.alphas:
            if self.images is None:
                self.images = tournament_tensors(self.search)
            train, held_out = self.images
            result = run_tournament(self.curves.space, [self.curves.genotype(c) for c in cells], train, held_out,
                                    self.settings, self.seed)
            self.alphas[key] = list(result.alphas)
            with self.path.open("a") as stream:
                stream.write(json.dumps({"group": key, "alphas": self.alphas[key]}) + "\n")
        return np.asarray(self.alphas[key], dtype=float)

    def winners(self, order: list[int], cells: list[str], prior_weight: float) -> tuple[int, int]:
        """(max-alpha winner, winner of log softmax(alpha) - w * rank) among `order` (best first)."""
        alphas = self.play([cells[i] for i in order])
        logits = np.where(np.isfinite(alphas), alphas - np.logaddexp.reduce(np.nan_to_num(alphas, nan=-np.inf)),
                          -np.inf)
        ranks = np.arange(len(order)) / max(1, len(order) - 1)
        return order[int(np.argmax(logits))], order[int(np.argmax(logits - prior_weight * ranks))]


def finalists_pick(order: list[int], cells: list[str], prior: np.ndarray, curves: Curves) -> tuple[int, int]:
    """(winner, training steps) of successive halving over `order` (best first), as finalists.py decides."""
    rungs, alive, done, steps = curves.config.rungs, list(order), 0, 0
    for number, rung in enumerate(rungs):
        if len(alive) == 1:
            break
        tse = {i: curves.tse(cells[i], rung) for i in alive}
        steps += len(alive) * (rung - done)
        done = rung
        alive = sorted(alive, key=order.index)  # the aggregate's order breaks ties (TSEs within the band)
        values = [tse[i] for i in alive]
        if number < len(rungs) - 1:
            alive = [alive[i] for i in survivors(values, math.ceil(len(alive) / 2), curves.config.tse_band)]
        else:
            alive = [alive[decide(values, [prior[i] for i in alive], curves.config.tse_band)]]
    return alive[0], steps


def pick_rows(pool: pd.DataFrame, curves: Curves, top: int, tournaments: Tournaments | None = None
              ) -> list[dict]:
    """One row per rule: the cell it picks in this pool."""
    picks = {"best": int(np.argmax(pool["val_accuracy"])), "random": 0,
             "#params (largest)": int(np.argmax(pool["params"]))}
    nwot = pool["naslib_nwot"].to_numpy(float)
    if np.isfinite(nwot).any():
        picks["NASLib nwot"] = int(np.nanargmax(nwot))
    steps = {}
    cells = pool["canonical"].tolist()
    for label, names in AGGREGATES.items():
        aggregate = az_nas_log_rank(pool[list(names)].to_numpy(float))
        order = [int(i) for i in np.argsort(aggregate, kind="stable")]
        picks[label] = order[0]
        if top > 1:
            key = f"finalists (top {top}) on {label}"
            picks[key], steps[key] = finalists_pick(order[:top], cells, aggregate, curves)
        if tournaments is not None and label == "DARTS defaults":
            size, weight = tournaments.settings.size, tournaments.search.tournament_prior
            plain, weighed = tournaments.winners(order[:size], cells, weight)
            picks[f"tournament of the best {size}, max alpha"] = plain
            picks[f"tournament of the best {size}, with the prior (w = {weight:g})"] = weighed
    accuracy = pool["val_accuracy"].to_numpy(float)
    rows = [{"rule": "median", "accuracy": float(np.median(accuracy)), "percentile": 50.0,
             "gap_to_best": float(accuracy.max() - np.median(accuracy)), "steps": 0}]
    for rule, index in picks.items():
        rows.append({"rule": rule, "accuracy": accuracy[index],
                     "percentile": 100.0 * float((accuracy < accuracy[index]).mean()),
                     "gap_to_best": float(accuracy.max() - accuracy[index]), "steps": steps.get(rule, 0)})
    return rows


def main() -> None:
    """Draw the pools, replay every rule, write picks.csv and pools.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--pools", type=int, default=50)
    parser.add_argument("--pool-size", type=int, default=100)
    parser.add_argument("--top", type=int, default=8, help="finalists per pool (0: no training)")
    parser.add_argument("--finalist-steps", type=int, default=100)
    parser.add_argument("--finalist-width", type=int, default=8)
    parser.add_argument("--shape", default="16.32.64|1.1.1", help="widths|cells of the finalists' networks")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tournament", action="store_true", help="also play a tournament of the best 4")
    parser.add_argument("--reverse", action="store_true", help="walk the pools from the last one")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    apply_thread_rule(1)
    table = pd.read_csv(args.scores)
    s = args.finalist_steps
    # float32: the cached curves of report/heuristics/darts/pools were trained so, before the finalists moved to
    # float64 (fne/training/finalists.py); a new cache may drop this and rebuild the curves in float64.
    config = FinalistConfig(top=args.top, rungs=(s // 8, s // 4, s // 2, s), C=args.finalist_width, seed=args.seed,
                            dtype="float32")
    args.out.mkdir(parents=True, exist_ok=True)
    curves = Curves(args.out / "curves.jsonl", args.shape, config)
    tournaments = Tournaments(args.out / "tournaments.jsonl", curves, args.seed) if args.tournament else None
    rng = np.random.default_rng(args.seed)
    pools = [rng.choice(len(table), size=args.pool_size, replace=False) for _ in range(args.pools)]
    rows = []
    # --reverse: a second process can fill the shared caches from the other end (lines are appended whole)
    for number in (reversed(range(args.pools)) if args.reverse else range(args.pools)):
        pool = table.iloc[pools[number]].reset_index(drop=True)
        rows += [{"pool": number, **row} for row in pick_rows(pool, curves, args.top, tournaments)]
        log.info("pool %d/%d done; %d cells trained so far (%.0f CPU-s this process)", number + 1, args.pools,
                 len(curves.losses), curves.trained_seconds)
    picks = pd.DataFrame(rows).sort_values("pool", kind="stable")
    picks.to_csv(args.out / "picks.csv", index=False, float_format="%.4f")
    summary = picks.groupby("rule", sort=False).agg(
        mean_percentile=("percentile", "mean"), in_top_10_percent=("percentile", lambda p: float((p >= 90).mean())),
        mean_gap_to_best=("gap_to_best", "mean"), mean_accuracy=("accuracy", "mean"),
        mean_training_steps=("steps", "mean")).reset_index()
    text = ["# The final pick in the DARTS space: random pools of NB301 cells", "",
            f"`python experiments/darts_pools.py {args.scores} --out {args.out} --pools {args.pools} "
            f"--pool-size {args.pool_size} --top {args.top}`: {args.pools} pools of {args.pool_size} of the "
            f"{len(table)} cells; accuracy = NB301 surrogate CIFAR-10 validation accuracy; percentile = share of "
            f"the pool strictly below the pick. Finalists train at `{args.shape}`, C={args.finalist_width}, rungs "
            f"{config.rungs} on the shipped 1,000-image sample ({len(curves.losses)} distinct cells trained).", "",
            markdown_table(summary.round(3)), ""]
    (args.out / "pools.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
