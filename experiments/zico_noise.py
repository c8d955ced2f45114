"""ZiCo's float noise: how far one cell's ZiCo moves between thread counts, and what capping its ratio would do.

    python experiments/zico_noise.py --cells 40
    python experiments/zico_noise.py --history experiments/results/default_picks_runs/nb201-threads1/history.csv

Scores the cells (a seeded random sample of the space, or every k-th row of a run's history.csv) with `zico`
alone through `fne.score`, at each thread count, keeping the two half-batches' loss gradients that ZiCo reads.
From the same gradients it recomputes ZiCo with the per-entry ratio mean|g|/std(g) capped at each of
`--caps` (inf = ZiCo as fne and the reference compute it), and prints per cap the median and largest relative
spread of a cell's ZiCo over the thread counts, and the share of the uncapped sum that entries with a ratio
over 1e3 carry. With two mini-batches the ratio is (|g1|+|g2|)/|g1-g2|: entries whose two gradients agree to
float32 rounding get ratios of 1e5 and more, which float noise sets (experiments/results/default_picks.md).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import fne
import fne.scoring.zico as zico_module
from fne.genotopheno.spaces import get_space
from fne.scoring.probe_gradients import LossGradients


def capped_zico(gradients: LossGradients, cap: float) -> float:
    """ZiCo (higher = better) with each entry's mean|g| / std(g) capped at `cap`."""
    grads = gradients.flat
    std = grads.std(0, correction=0)
    ratio = torch.where(std != 0, grads.abs().mean(0) / std, 0.0).clamp(max=cap)
    per_layer = torch.segment_reduce(ratio, "sum", lengths=torch.tensor(gradients.sizes, device=grads.device))
    return float(torch.where(per_layer != 0, per_layer, 1.0).log().sum())


def share_over(gradients: LossGradients, threshold: float) -> float:
    """The share of the summed ratios carried by entries whose ratio exceeds `threshold`."""
    grads = gradients.flat
    std = grads.std(0, correction=0)
    ratio = torch.where(std != 0, grads.abs().mean(0) / std, 0.0)
    return float(ratio[ratio > threshold].sum() / ratio.sum())


def gradients_at(cells: list[str], space: str, threads: int) -> list[LossGradients]:
    """Each cell's ZiCo gradients as `fne.score` computes them at `threads` torch threads."""
    captured: list[LossGradients] = []
    original = zico_module.zico_score

    def recording(gradients: LossGradients):
        captured.append(gradients)
        return original(gradients)

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    zico_module.zico_score = recording
    try:
        fne.score(cells, space=space, heuristics=["zico"])
    finally:
        zico_module.zico_score = original
        torch.set_num_threads(before)
    if len(captured) != len(cells):
        raise SystemExit(f"error: {len(cells) - len(captured)} cell(s) had no ZiCo gradients")
    return captured


def main() -> None:
    """Command line: score, recompute per cap, print the spreads."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history", type=Path, help="take every k-th genotype of this history.csv instead")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--caps", type=float, nargs="+", default=[math.inf, 1e4, 1e3, 1e2])
    args = parser.parse_args()
    if args.history is not None:
        genotypes = pd.read_csv(args.history)["genotype"].tolist()
        cells = genotypes[:: max(1, len(genotypes) // args.cells)][: args.cells]
    else:
        rng = np.random.default_rng(args.seed)
        cells = [get_space(args.space).sample(rng) for _ in range(args.cells)]
    grads = {t: gradients_at(cells, args.space, t) for t in args.threads}
    rows = []
    for cap in args.caps:
        values = np.array([[capped_zico(grads[t][i], cap) for t in args.threads] for i in range(len(cells))])
        spread = (values.max(1) - values.min(1)) / np.abs(values).max(1)
        rows.append({"cap": cap, "median_spread": np.median(spread), "max_spread": spread.max(),
                     "worst_cell": cells[int(spread.argmax())]})
    print(f"{len(cells)} {args.space} cells, threads {args.threads}; relative spread of ZiCo over the thread counts:")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2e}"))
    shares = [share_over(grads[args.threads[0]][i], 1e3) for i in range(len(cells))]
    print(f"share of ZiCo's ratio sum from entries over 1e3: median {np.median(shares):.2f}, max {max(shares):.2f}")


if __name__ == "__main__":
    main()
