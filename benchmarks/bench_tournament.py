"""CPU seconds of one DARTS tournament: the former supernet (alpha, 20 steps) against the default (training speed).

    python benchmarks/bench_tournament.py --threads 1 --repeats 3

Both play the same groups of 4 NB301 cells (the first groups of report/heuristics/darts/all_scores/scores.csv
shuffled as the search shuffles children) on the search's tournament images (the shipped sample, half/half),
alternating so that machine load falls on both alike; reported as CPU seconds per tournament
(time.process_time) and their ratio, which is what load does not change.

Measured 2026-12-06 on the shared 2-core machine at load 5-7, --threads 1 --repeats 3: former 28.0 CPU-s,
default 10.0 CPU-s, ratio 0.36 (experiments/results/darts_stage_times.md).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from fne.evolution.survival import split_into_tournaments
from fne.genotopheno.spaces import get_space
from fne.run.config import SearchConfig
from fne.run.search import tournament_tensors
from fne.threads import apply_thread_rule
from fne.training.alone import run_alone_tournament
from fne.training.tournament import run_tournament

ROOT = Path(__file__).resolve().parents[1]
SCORES = ROOT / "report" / "heuristics" / "darts" / "all_scores" / "scores.csv"


def main() -> None:
    """Time both ways of playing on the same groups and print CPU seconds and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="groups played by each")
    args = parser.parse_args()
    apply_thread_rule(args.threads)
    search = SearchConfig(space="darts", seed=0, device="cpu")
    default = search.tournament_config()
    former = replace(default, judge="alpha", steps=20, warmup_steps=6)  # the DARTS tournament before issue 24
    cells = ["|".join(c.split("|")[:2]) + "|16.32.64|1.1.1" for c in pd.read_csv(SCORES)["canonical"]]
    groups = split_into_tournaments(len(cells), 4, np.random.default_rng(0))[:args.repeats]
    train, held_out = tournament_tensors(search)
    space = get_space("darts")
    seconds = {"former: supernet, alpha, 20 steps": [], f"default: alone, training speed, {default.steps} steps": []}
    for group in groups:
        for times, (runner, config) in zip(seconds.values(), ((run_tournament, former),
                                                              (run_alone_tournament, default)), strict=True):
            started = time.process_time()
            runner(space, [cells[i] for i in group], train, held_out, config, 0)
            times.append(time.process_time() - started)
    for label, times in seconds.items():
        print(f"{label}: {np.mean(times):.1f} CPU-s per tournament ({', '.join(f'{t:.1f}' for t in times)})")
    former_mean, default_mean = (np.mean(t) for t in seconds.values())
    print(f"ratio default / former: {default_mean / former_mean:.2f}")


if __name__ == "__main__":
    main()
