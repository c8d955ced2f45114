"""Do the finalists help the DARTS pick? Chosen on pools of one half of the shared cells, judged on the other's.

    python experiments/darts_finalists_cv.py report/heuristics/darts/all_scores/scores.csv \
        --curves report/heuristics/darts/pools --out report/heuristics/darts/finalists

The shared pools (experiments/darts_pools.py) draw 50 pools of 100 from the same 600 cells, so they share
most of their cells and one sample decides both the choice and its judgement. Here each of `--splits`
random splits halves the 600 cells; each half gets `--pools` seeded pools of `--pool-size` of its own 300
cells; a rule is chosen on one half's pools (the highest mean percentile of its pick; ties go to the stage
off) and judged on the other's, which share no cell with them. Rules: the aggregate alone (finalists off),
and the finalists' stage (successive halving by training speed, the last two decided with the aggregate,
exactly finalists.py's rule, replayed with darts_pools's cached loss curves) on the aggregate's best 2, 4
or 8 at the search's settings (width 8, rungs 12/25/50/100). Percentile: the share of the pool strictly
below the pick by surrogate accuracy; intervals: paired bootstrap over the judged pools (1,000 resamples).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from darts_pools import AGGREGATES, Curves, finalists_pick

from fne.reporting import markdown_table
from fne.scoring.aggregation import az_nas_log_rank
from fne.threads import apply_thread_rule
from fne.training.finalists import FinalistConfig

OFF = "aggregate alone (finalists off)"
TOPS = (2, 4, 8)


def pool_percentiles(pool: pd.DataFrame, curves: Curves) -> dict[str, float]:
    """Percentile of each rule's pick in this pool."""
    order = [int(i) for i in np.argsort(az_nas_log_rank(pool[list(AGGREGATES["DARTS defaults"])].to_numpy(float)),
                                        kind="stable")]
    aggregate = az_nas_log_rank(pool[list(AGGREGATES["DARTS defaults"])].to_numpy(float))
    cells = pool["canonical"].tolist()
    picks = {OFF: order[0]}
    for top in TOPS:
        picks[f"finalists, top {top}"], _ = finalists_pick(order[:top], cells, aggregate, curves)
    accuracy = pool["val_accuracy"].to_numpy(float)
    return {rule: 100.0 * float((accuracy < accuracy[i]).mean()) for rule, i in picks.items()}


def half_pools(table: pd.DataFrame, cells: np.ndarray, pools: int, size: int, rng: np.random.Generator,
               curves: Curves) -> pd.DataFrame:
    """One row per pool of this half: every rule's percentile."""
    rows = []
    for _ in range(pools):
        pool = table.iloc[rng.choice(cells, size=size, replace=False)].reset_index(drop=True)
        rows.append(pool_percentiles(pool, curves))
    return pd.DataFrame(rows)


def interval(diff: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Paired bootstrap 95% interval of a mean difference over pools."""
    boot = np.random.default_rng(seed).integers(0, len(diff), size=(1000, len(diff)))
    low, high = np.percentile(diff[boot].mean(axis=1), [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    """Split, draw, replay, choose, judge; write cv.csv, rules.csv and finalists.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", type=Path)
    parser.add_argument("--curves", type=Path, required=True, help="folder of darts_pools's curves.jsonl")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--pools", type=int, default=25)
    parser.add_argument("--pool-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    apply_thread_rule(1)
    table = pd.read_csv(args.scores)
    config = FinalistConfig(top=8, rungs=(12, 25, 50, 100), C=8, seed=0)  # darts_pools's settings, its cache
    curves = Curves(args.curves / "curves.jsonl", "16.32.64|1.1.1", config)
    rng = np.random.default_rng(args.seed)
    choices, judged = [], []
    args.out.mkdir(parents=True, exist_ok=True)
    for split in range(args.splits):
        shuffled = rng.permutation(len(table))
        halves = [half_pools(table, part, args.pools, args.pool_size, rng, curves)
                  for part in (shuffled[:len(table) // 2], shuffled[len(table) // 2:])]
        for half, (fit, judge) in enumerate((halves, halves[::-1])):
            means = fit.mean()
            chosen = max(means.index, key=lambda rule: (means[rule], rule == OFF))
            diff = (judge[chosen] - judge[OFF]).to_numpy()
            low, high = interval(diff)
            choices.append({"split": split, "half": half, "chosen": chosen, "chosen_on_fit": means[chosen],
                            "judged": judge[chosen].mean(), "aggregate_alone_judged": judge[OFF].mean(),
                            "difference": diff.mean(), "ci_low": low, "ci_high": high})
            judged.append(judge.assign(split=split, half=half))
        logging.info("split %d/%d: %d cells trained so far", split + 1, args.splits, len(curves.losses))
        write_tables(args, pd.DataFrame(choices), pd.concat(judged, ignore_index=True), split + 1)


def write_tables(args: argparse.Namespace, cv: pd.DataFrame, pools: pd.DataFrame, splits: int) -> None:
    """cv.csv, rules.csv and finalists.md of the splits done so far (rewritten after each split)."""
    rules = []
    for rule in [OFF, *(f"finalists, top {top}" for top in TOPS)]:
        diff = (pools[rule] - pools[OFF]).to_numpy()
        per_choice = pools.assign(d=diff).groupby(["split", "half"])["d"].mean()
        low, high = interval(diff)
        rules.append({"rule": rule, "mean_percentile": pools[rule].mean(),
                      "in_top_10_percent": float((pools[rule] >= 90).mean()), "minus_aggregate": diff.mean(),
                      "ci_low": low, "ci_high": high,
                      "halves_better / worse": f"{int((per_choice > 0).sum())} / {int((per_choice < 0).sum())}"})
    rules = pd.DataFrame(rules)
    cv.to_csv(args.out / "cv.csv", index=False, float_format="%.3f")
    rules.to_csv(args.out / "rules.csv", index=False, float_format="%.3f")
    text = ["# DARTS finalists, chosen on half the shared cells and judged on the other half", "",
            f"`python experiments/darts_finalists_cv.py {args.scores} --curves {args.curves} --out {args.out} "
            f"--splits {args.splits} --pools {args.pools} --pool-size {args.pool_size}` ({splits} splits done)", "",
            "## Each rule on the judged halves' pools (pooled over the splits)", "", markdown_table(rules.round(2)), "",
            "## The choice made on each half and its judgement on the other", "", markdown_table(cv.round(2)), ""]
    (args.out / "finalists.md").write_text("\n".join(text))


if __name__ == "__main__":
    main()
