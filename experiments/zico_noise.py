"""ZiCo's float noise: how far one cell's ZiCo moves between thread counts, and what capping its ratio would do.

    python experiments/zico_noise.py --cells 40
    python experiments/zico_noise.py --history experiments/results/default_picks_runs/nb201-threads1/history.csv
    python experiments/zico_noise.py --study report/heuristics/scores.csv --threads 1   # what a cap does to ranking

Scores the cells (a seeded random sample of the space, or every k-th row of a run's history.csv) with `zico`
alone through `fne.score`, at each thread count, keeping the two half-batches' loss gradients that ZiCo reads.
From the same gradients it recomputes ZiCo with the per-entry ratio mean|g|/std(g) capped at each of
`--caps` (inf = ZiCo as fne and the reference compute it), and prints per cap the median and largest relative
spread of a cell's ZiCo over the thread counts, and the share of the uncapped sum that entries with a ratio
over 1e3 carry. With two mini-batches the ratio is (|g1|+|g2|)/|g1-g2|: entries whose two gradients agree to
float32 rounding get ratios of 1e5 and more, which float noise sets (experiments/results/default_picks.md).

With `--study` (a plot_scores scores.csv: arch_str, cifar10_test and the NB201 default scores) it scores that
study's cells instead and prints, per cap, the Spearman correlation with the true accuracy of ZiCo and of
rank_combined (the study's other six default scores with this ZiCo), with 95% bootstrap intervals.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

import fne
import fne.scoring.zico as zico_module
from fne.genotopheno.spaces import get_space
from fne.scoring.aggregation import az_nas_log_rank
from fne.scoring.fitness import DEFAULT_HEURISTICS
from fne.scoring.probe_gradients import LossGradients
from fne.study.bootstrap import bootstrap_interval, resample_indices


def _ratios(gradients: LossGradients) -> torch.Tensor:
    """Each entry's mean|g| / std(g) over the mini-batches (0 where std is 0), as fne's ZiCo computes it."""
    grads = gradients.flat
    std = grads.std(0, correction=0)
    return torch.where(std != 0, grads.abs().mean(0) / std, 0.0)


def capped_zico(gradients: LossGradients, cap: float) -> float:
    """ZiCo (higher = better) with each entry's mean|g| / std(g) capped at `cap`."""
    ratio = _ratios(gradients).clamp(max=cap)
    per_layer = torch.segment_reduce(ratio, "sum", lengths=torch.tensor(gradients.sizes, device=ratio.device))
    if not (per_layer != 0).any():
        return -math.inf  # undefined, as fne's zico reports it: ranked last
    return float(torch.where(per_layer != 0, per_layer, 1.0).log().sum())


def share_over(gradients: LossGradients, threshold: float) -> float:
    """The share of the summed ratios carried by entries whose ratio exceeds `threshold`."""
    ratio = _ratios(gradients)
    return float(ratio[ratio > threshold].sum() / ratio.sum())


def zico_at(cells: list[str], space: str, threads: int, caps: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(cells x caps) ZiCo of each cell at each cap, and each cell's share over 1e3, as `fne.score` computes them
    at `threads` torch threads; only these numbers are kept, not the gradients (2 x 0.6 M floats a cell)."""
    values: list[list[float]] = []
    shares: list[float] = []
    original = zico_module.zico_score

    def recording(gradients: LossGradients):
        values.append([capped_zico(gradients, cap) for cap in caps])
        shares.append(share_over(gradients, 1e3))
        return original(gradients)

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    zico_module.zico_score = recording
    try:
        fne.score(cells, space=space, heuristics=["zico"])
    finally:
        zico_module.zico_score = original
        torch.set_num_threads(before)
    if len(values) != len(cells):
        raise SystemExit(f"error: {len(cells) - len(values)} cell(s) had no ZiCo gradients")
    return np.array(values), np.array(shares)


def spearman_interval(score: np.ndarray, truth: np.ndarray, resamples: int = 1000) -> tuple[float, float, float]:
    """Spearman of -score (scores are minimised) with the truth, and its 95% bootstrap interval (fne.study's)."""
    indices = resample_indices(len(truth), resamples, seed=0)
    _, _, low, high = bootstrap_interval(-score, truth, indices)
    return float(stats.spearmanr(-score, truth).statistic), low, high


def study_correlations(study: Path, values: np.ndarray, caps: list[float]) -> pd.DataFrame:
    """Per cap: Spearman (and interval) of -ZiCo and of rank_combined with the study's true accuracies."""
    table = pd.read_csv(study)
    truth = table["cifar10_test"].to_numpy(float)
    others = [c for c in DEFAULT_HEURISTICS if c != "zico"]
    rows = []
    for column, cap in enumerate(caps):
        zico = -values[:, column]  # minimised, as fne registers it
        combined = az_nas_log_rank(table[others].assign(zico=zico), [*others, "zico"])
        rows.append({"cap": cap, **dict(zip(("zico", "zico_lo", "zico_hi"), spearman_interval(zico, truth))),
                     **dict(zip(("rank_combined", "rc_lo", "rc_hi"), spearman_interval(combined, truth)))})
    return pd.DataFrame(rows)


def main() -> None:
    """Command line: score, recompute per cap, print the spreads."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", default="nb201")
    parser.add_argument("--cells", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--history", type=Path, help="take every k-th genotype of this history.csv instead")
    parser.add_argument("--study", type=Path, help="score this plot_scores scores.csv's cells, correlate")
    parser.add_argument("--out", type=Path, help="with --study: write each cell's ZiCo per cap to this CSV")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--caps", type=float, nargs="+", default=[math.inf, 1e4, 1e3, 1e2])
    args = parser.parse_args()
    if args.study is not None:
        cells = pd.read_csv(args.study)["arch_str"].tolist()
        values, _ = zico_at(cells, args.space, args.threads[0], args.caps)
        if args.out is not None:
            pd.DataFrame(values, columns=[f"zico_cap_{cap:g}" for cap in args.caps]).assign(arch_str=cells).to_csv(
                args.out, index=False)
        print(study_correlations(args.study, values, args.caps).to_string(index=False, float_format="{:.3f}".format))
        return
    if args.history is not None:
        genotypes = pd.read_csv(args.history)["genotype"].tolist()
        cells = genotypes[:: max(1, len(genotypes) // args.cells)][: args.cells]
    else:
        rng = np.random.default_rng(args.seed)
        cells = [get_space(args.space).sample(rng) for _ in range(args.cells)]
    measured = {t: zico_at(cells, args.space, t, args.caps) for t in args.threads}
    rows = []
    for column, cap in enumerate(args.caps):
        values = np.stack([measured[t][0][:, column] for t in args.threads], axis=1)
        values[~np.isfinite(values).all(1)] = 1.0  # an undefined cell has no spread to measure
        spread = (values.max(1) - values.min(1)) / np.abs(values).max(1)
        rows.append({"cap": cap, "median_spread": np.median(spread), "max_spread": spread.max(),
                     "worst_cell": cells[int(spread.argmax())]})
    print(f"{len(cells)} {args.space} cells, threads {args.threads}; relative spread of ZiCo over the thread counts:")
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2e}"))
    shares = measured[args.threads[0]][1]
    print(f"share of ZiCo's ratio sum from entries over 1e3: median {np.nanmedian(shares):.2f}, "
          f"max {np.nanmax(shares):.2f}")


if __name__ == "__main__":
    main()
