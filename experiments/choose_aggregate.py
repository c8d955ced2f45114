"""Choose the default score set and aggregate by measurement, with bootstrap confidence intervals.

    python experiments/choose_aggregate.py report/heuristics/scores.csv --out report/heuristics

Reads a `plot_scores` scores.csv that holds every registered score of the same architectures (and their
true accuracy), then:

1. each score alone: Kendall tau and Spearman rho against accuracy, with 95% bootstrap intervals;
2. every subset of the candidate scores under both aggregates (TE-NAS's linear rank sum, AZ-NAS's sum
   of log ranks), selected by two-fold cross-validation: a subset is chosen on one half of the
   architectures and judged on the other, so the reported figure is not the maximum over thousands of
   subsets of one sample (the selection bias that would not carry to other architectures or datasets);
3. the named candidate defaults with bootstrap intervals and paired differences against AZ-NAS's four;
4. how degenerate Pareto fronts get: the share of non-dominated members of random pools of 40 (a
   population of 20 plus 20 children) for objective sets of growing size.

Writes aggregation.csv, subsets.csv, fronts.csv and aggregation.md into --out.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from fne.evolution.selection import pareto_fronts
from fne.genotopheno.spaces import SPACES, get_space
from fne.reporting import markdown_table
from fne.run.config import DEFAULT_OBJECTIVES
from fne.scoring.aggregation import AGGREGATES, AZ_NAS_SCORES
from fne.scoring.fitness import DEFAULT_HEURISTICS

CANDIDATES = ("az_expressivity", "az_progressivity", "az_trainability", "log_flops", "log_params", "zico", "meco",
              "swap", "synflow", "ntk", "linear_regions", "grad_corr")
NAMED = {
    "original three (linear)": (("ntk", "linear_regions", "grad_corr"), "linear"),
    "AZ-NAS four (log)": (AZ_NAS_SCORES, "az_nas"),
    "fne defaults (log)": (DEFAULT_HEURISTICS, "az_nas"),
    "fne defaults (linear)": (DEFAULT_HEURISTICS, "linear"),
}


def correlations(predicted: np.ndarray, accuracy: np.ndarray) -> tuple[float, float]:
    """(Kendall tau, Spearman rho) of a higher-is-better prediction against accuracy."""
    return float(stats.kendalltau(predicted, accuracy).statistic), float(stats.spearmanr(predicted, accuracy).statistic)


def aggregate(table: pd.DataFrame, names: tuple[str, ...], how: str) -> np.ndarray:
    """The aggregate of the minimised scores, oriented higher = predicted better."""
    return -AGGREGATES[how](table, list(names))


def bootstrap(table: pd.DataFrame, accuracy: str, predict, resamples: int, seed: int) -> np.ndarray:
    """(resamples, 2) Kendall/Spearman of `predict(subtable)` over bootstrap resamples of the rows."""
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, 2))
    for i in range(resamples):
        rows = table.iloc[rng.integers(len(table), size=len(table))].reset_index(drop=True)
        out[i] = correlations(predict(rows), rows[accuracy].to_numpy(float))
    return out


def interval(samples: np.ndarray) -> str:
    """'[low, high]' 95% percentile interval."""
    low, high = np.percentile(samples, [2.5, 97.5])
    return f"[{low:.3f}, {high:.3f}]"


def subsets_by_cross_validation(table: pd.DataFrame, accuracy: str, candidates: tuple[str, ...],
                                seed: int) -> pd.DataFrame:
    """Every subset x aggregate scored on both halves; the chosen one per half judged on the other half."""
    order = np.random.default_rng(seed).permutation(len(table))
    halves = [table.iloc[order[: len(table) // 2]], table.iloc[order[len(table) // 2:]]]
    rows = []
    for size in range(1, len(candidates) + 1):
        for names in itertools.combinations(candidates, size):
            for how in AGGREGATES:
                taus = [correlations(aggregate(h, names, how), h[accuracy].to_numpy(float))[0] for h in halves]
                rows.append({"scores": "+".join(names), "size": size, "aggregate": how, "tau_half_a": taus[0],
                             "tau_half_b": taus[1]})
    return pd.DataFrame(rows)


def front_shares(table: pd.DataFrame, sets: dict[str, tuple[str, ...]], pools: int, seed: int) -> pd.DataFrame:
    """Mean share of non-dominated members in random pools of 40 architectures, per objective set."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, names in sets.items():
        shares = []
        for _ in range(pools):
            pool = table.iloc[rng.choice(len(table), size=40, replace=False)]
            # a grouped objective "a+b" is the log-rank aggregate of its members within the pool, as in the search
            F = np.column_stack([AGGREGATES["az_nas"](pool, name.split("+")) if "+" in name
                                 else pool[name].to_numpy(float) for name in names])
            shares.append(len(pareto_fronts(F)[0]) / 40)
        rows.append({"objectives": label, "count": len(names), "non_dominated_share": float(np.mean(shares))})
    return pd.DataFrame(rows)


def main() -> None:
    """Run the measurements and write the tables and the page."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", type=Path)
    parser.add_argument("--accuracy", default="cifar10_test")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=int, default=1,
                        help="random two-fold splits for the subset choice (each split seeded seed+k)")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--named", action="append", default=[],
                        help="extra named default to report: LABEL=score1+score2:aggregate")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    table = pd.read_csv(args.scores)
    candidates = tuple(c for c in args.candidates.split(",") if c in table.columns)
    named = dict(NAMED)
    for spec in args.named:
        label, rest = spec.split("=", 1)
        names, how = rest.rsplit(":", 1)
        named[label] = (tuple(names.split("+")), how)
    accuracy = table[args.accuracy].to_numpy(float)

    single = []
    for name in candidates:
        tau, rho = correlations(-table[name].to_numpy(float), accuracy)
        boot = bootstrap(table, args.accuracy, lambda t, n=name: -t[n].to_numpy(float), args.resamples, args.seed)
        single.append({"what": name, "kendall": tau, "kendall_ci": interval(boot[:, 0]), "spearman": rho,
                       "spearman_ci": interval(boot[:, 1])})
    baseline = bootstrap(table, args.accuracy, lambda t: aggregate(t, AZ_NAS_SCORES, "az_nas"), args.resamples,
                         args.seed)
    for label, (names, how) in named.items():
        if not set(names) <= set(table.columns):  # e.g. ntk, not scored on the DARTS table
            continue
        tau, rho = correlations(aggregate(table, names, how), accuracy)
        boot = bootstrap(table, args.accuracy, lambda t, n=names, h=how: aggregate(t, n, h), args.resamples, args.seed)
        single.append({"what": label, "kendall": tau, "kendall_ci": interval(boot[:, 0]), "spearman": rho,
                       "spearman_ci": interval(boot[:, 1]),
                       "kendall_minus_az_nas_ci": interval(boot[:, 0] - baseline[:, 0]),
                       "spearman_minus_az_nas_ci": interval(boot[:, 1] - baseline[:, 1])})
    summary = pd.DataFrame(single)

    chosen = []
    for split in range(args.splits):
        subsets = subsets_by_cross_validation(table, args.accuracy, candidates, args.seed + split)
        for pick, judge in (("tau_half_a", "tau_half_b"), ("tau_half_b", "tau_half_a")):
            best = subsets.loc[subsets[pick].idxmax()]
            chosen.append({"split": split, "chosen_on": pick, "scores": best["scores"],
                           "aggregate": best["aggregate"], "tau_where_chosen": best[pick],
                           "tau_held_out": best[judge]})
    chosen = pd.DataFrame(chosen)
    subsets = subsets_by_cross_validation(table, args.accuracy, candidates, args.seed)  # the first split, written

    sets = {"+".join(n): n for n in (("az_expressivity", "az_trainability"),
                                       ("az_expressivity", "az_trainability", "log_flops"),
                                       AZ_NAS_SCORES, DEFAULT_HEURISTICS, candidates)}
    sets["fne default groups: " + ", ".join(DEFAULT_OBJECTIVES)] = DEFAULT_OBJECTIVES
    for space in SPACES:  # a space's own objectives, where it has them
        own = tuple(get_space(space).search_defaults.get("pareto_objectives", ()))
        if own and own != DEFAULT_OBJECTIVES:
            sets[f"{space} space's objectives: " + ", ".join(own)] = own
        if own and "+" not in "".join(own):
            sets[f"{space} space's scores grouped: " + "+".join(own)] = ("+".join(own[:-1]), own[-1])
    usable = {k: v for k, v in sets.items() if all(m in table.columns for c in v for m in c.split("+"))}
    fronts = front_shares(table, usable, 200, args.seed)

    args.out.mkdir(parents=True, exist_ok=True)
    summary.to_csv(args.out / "aggregation.csv", index=False, float_format="%.4f")
    subsets.sort_values("tau_half_a", ascending=False).to_csv(args.out / "subsets.csv", index=False,
                                                              float_format="%.4f")
    fronts.to_csv(args.out / "fronts.csv", index=False, float_format="%.3f")
    text = ["# Choosing the default scores and aggregate", "",
            f"`python experiments/choose_aggregate.py {args.scores} --out {args.out}`: {len(table)} architectures, "
            f"{args.resamples} bootstrap resamples (95% percentile intervals).", "",
            markdown_table(summary.round(3)), "",
            "## Subset choice by two-fold cross-validation (Kendall tau)", "",
            markdown_table(chosen.round(3)), "",
            f"Held-out Kendall tau of the chosen subsets: mean {chosen['tau_held_out'].mean():.3f} over "
            f"{len(chosen)} choices ({args.splits} split(s) x 2 halves).", "",
            "## Pareto fronts: share of non-dominated members in random pools of 40", "",
            markdown_table(fronts.round(3)), ""]
    (args.out / "aggregation.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
