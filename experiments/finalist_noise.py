"""The noise band of the finalists' TSE: the same cells trained at several thread counts, in float32 and float64.

    python experiments/finalist_noise.py experiments/results/nb201_new_seeds/seed5 --cells 3 \
        --out experiments/results/finalist_noise
    python experiments/finalist_noise.py experiments/results/darts_default/run2 --cells 2 --steps 50 \
        --out experiments/results/finalist_noise
    python experiments/finalist_noise.py --summarise experiments/results/nb201_new_seeds/seed5 \
        experiments/results/darts_default/run2 --out experiments/results/finalist_noise

A finished run's finalists.csv is its shortlist; the `--cells` that trained longest there (the contenders of
the late rungs, then the aggregate's order) are trained again with the run's finalists' settings (its width,
seed, rungs and stream of images) for the last rung's steps (or `--steps`: the DARTS default's 8 finalists
are decided at 50), once per thread count and dtype. A thread count
changes the order of float reductions as another CPU does, so the spread of one cell's TSE over the thread
counts is the noise that a machine adds to what successive halving compares. Each curve is cached as a JSON
line in <out>/curves.jsonl (a killed run resumes); the summary writes <out>/band.csv and <out>/README.md:
per space, dtype and rung, the largest spread of a cell's TSE (absolute and relative) beside the smallest gap
between two cells' TSEs, whether the cells' order by TSE
is the same at every thread count, and the CPU seconds of one training step at one thread.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fne.data.source import open_data, uint8_images
from fne.genotopheno.spaces import get_space
from fne.reporting import markdown_table
from fne.run import rundir
from fne.threads import apply_thread_rule
from fne.training.finalists import FinalistConfig, _Run, batch_stream, stream_positions

log = logging.getLogger("finalist_noise")
CURVES = "curves.jsonl"


def run_settings(run_dir: Path) -> tuple[str, FinalistConfig, list[str], list[float]]:
    """(space, the run's finalists' settings, its shortlist in the aggregate's order, their rank_combined)."""
    saved = json.loads((run_dir / "config.json").read_text())
    finalists = {k: v for k, v in saved["finalists"].items() if k in {f.name for f in dataclasses.fields(
        FinalistConfig)}}
    table = rundir.read_table(run_dir / "finalists.csv").sort_values("order")
    return saved["space"], FinalistConfig(**finalists), list(table["genotype"]), list(table["rank_combined"])


def contenders(run_dir: Path, count: int) -> list[str]:
    """The `count` cells of the run's shortlist that trained longest there (ties: the aggregate's order)."""
    table = rundir.read_table(run_dir / "finalists.csv").sort_values(["steps", "order"], ascending=[False, True])
    return list(table["genotype"][:count])


def cached(out: Path) -> dict[tuple, dict]:
    """The curves trained so far, keyed by (space, genotype, seed, dtype, threads)."""
    path = out / CURVES
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return {(r["space"], r["genotype"], r["seed"], r["dtype"], r["threads"]): r for r in rows}


def train_curve(space: str, genotype: str, config: FinalistConfig, threads: int, steps: int) -> dict:
    """One cell's loss curve over the last rung's steps with the finalists' recipe, and its CPU seconds."""
    apply_thread_rule(threads)
    dataset = open_data(None, 32)  # the run's data: the shipped sample (the default of every run used here)
    positions = stream_positions(dataset.train_size, config)
    images = uint8_images(dataset, positions, "train", "cpu")
    labels = torch.from_numpy(dataset.train_labels[positions].astype(np.int64))
    batches = batch_stream(images, labels, config, dataset.stats, ordered=True)
    model = get_space(space).build(genotype, C=config.C, num_classes=dataset.num_classes, seed=config.seed)
    run = _Run(model, config)
    began = time.process_time()
    run.advance(batches, steps)
    return {"space": space, "genotype": genotype, "seed": config.seed, "dtype": config.dtype, "threads": threads,
            "losses": run.losses, "cpu_seconds": time.process_time() - began}


def measure(run_dir: Path, cells: int, threads: list[int], dtypes: list[str], out: Path, steps: int | None) -> None:
    """Train the run's contenders at every thread count and dtype not cached yet, appending to curves.jsonl."""
    space, config, _, _ = run_settings(run_dir)
    steps = steps or config.rungs[-1]
    done = cached(out)
    out.mkdir(parents=True, exist_ok=True)
    for dtype in dtypes:
        for genotype in contenders(run_dir, cells):
            for count in threads:
                if len(done.get((space, genotype, config.seed, dtype, count), {}).get("losses", ())) >= steps:
                    continue
                row = train_curve(space, genotype, dataclasses.replace(config, dtype=dtype), count, steps)
                with (out / CURVES).open("a") as stream:
                    stream.write(json.dumps(row) + "\n")
                log.info("%s %s %s threads %d: TSE %.6f, %.0f CPU s", space, genotype, dtype, count,
                         np.mean(row["losses"]), row["cpu_seconds"])


def band_rows(curves: list[dict], rungs: tuple[int, ...]) -> list[dict]:
    """Per rung: the largest spread of a cell's TSE over thread counts, and the smallest gap between two cells."""
    rows = []
    for rung in (r for r in rungs if any(len(c["losses"]) >= r for c in curves)):
        tse = {}  # genotype -> {threads: TSE at the rung}
        for curve in (c for c in curves if len(c["losses"]) >= rung):
            tse.setdefault(curve["genotype"], {})[curve["threads"]] = float(np.mean(curve["losses"][:rung]))
        spreads = [(max(v.values()) - min(v.values()), max(abs(x) for x in v.values())) for v in tse.values()]
        centres = np.sort([np.mean(list(v.values())) for v in tse.values()])
        counts = sorted({c for v in tse.values() for c in v})
        orders = {tuple(sorted(tse, key=lambda g, c=c: tse[g].get(c, math.inf))) for c in counts}
        rows.append({"rung": rung, "cells": len(tse), "threads": ",".join(map(str, counts)),
                     "max_abs_spread": max(s for s, _ in spreads),
                     "max_rel_spread": max(s / m for s, m in spreads),
                     "smallest_gap_between_cells": float(np.diff(centres).min()) if len(centres) > 1 else math.inf,
                     "same_order_at_every_thread_count": len(orders) == 1})
    return rows


def summarise(runs: list[Path], out: Path) -> pd.DataFrame:
    """band.csv and README.md from the cached curves of each run's contenders."""
    done, rows = cached(out), []
    for run_dir in runs:
        space, config, _, _ = run_settings(run_dir)
        for dtype in ("float32", "float64"):
            curves = [r for (s, _, seed, d, _), r in done.items() if (s, seed, d) == (space, config.seed, dtype)]
            if not curves:
                continue
            one = [c["cpu_seconds"] / len(c["losses"]) for c in curves if c["threads"] == 1]
            for row in band_rows(curves, config.rungs):
                rows.append({"run": run_dir.name if run_dir.name != "run2" else "darts_default/run2", "space": space,
                             "dtype": dtype, **row, "cpu_s_per_step_1_thread": float(np.mean(one))})
    band = pd.DataFrame(rows)
    rundir.atomic_write_csv(out / "band.csv", band)
    shown = band.map(lambda v: f"{v:.2e}" if isinstance(v, float) and not v.is_integer() else v)
    text = ["# The finalists' TSE noise band", "", "Written by experiments/finalist_noise.py (its docstring says how).",
            "", markdown_table(shown), ""]
    (out / "README.md").write_text("\n".join(text))
    return band


def main() -> None:
    """Command line: measure one run's contenders, or summarise every cached curve."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", type=Path, help="finished run directories with finalists.csv")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the last rung's)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--summarise", action="store_true", help="only write band.csv and README.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.summarise:
        for run_dir in args.runs:
            measure(run_dir, args.cells, args.threads, args.dtypes, args.out, args.steps)
    print(summarise(args.runs, args.out).to_string(index=False))


if __name__ == "__main__":
    main()
