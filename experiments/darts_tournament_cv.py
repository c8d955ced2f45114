"""Which DARTS tournament decides better than the aggregate: chosen on half the shared cells, judged on the other.

    python experiments/darts_tournament_cv.py report/heuristics/darts/all_scores/scores.csv \
        --cache report/heuristics/darts/tournaments --out report/heuristics/darts/tournaments

Reads the values experiments/darts_tournaments.py measured (nothing is trained here) and the surrogate
accuracies of the 600 NB301 cells, which only judge. A rule is a reading of a played tournament (the
mixture's alphas, a candidate's own path's held-out loss in the trained supernet, the held-out loss of the
mixture without it; or, for cells trained alone, their held-out loss or training speed after n steps) and
a prior weight w: the winner maximises value - w * r, r in [0, 1] the candidate's rank in its group by the
DARTS aggregate (0 = best), exactly fne.evolution.survival.tournament_winner. w = inf is the aggregate's pick.

- Groups as the search forms them: the 600 cells shuffled (seed 0) into 150 groups of 4 by
  split_into_tournaments; the mixture was played on the first `--groups` of them.
- Cross-validation: `--splits` random halves of those groups (each half is half of the cells); the rule with
  the lowest mean within-group rank on one half is judged on the other (ties go to the larger w, the rule
  nearer the aggregate). For rules of cells trained alone, whose values do not depend on the group, a second
  procedure splits the 600 cells in half and regroups each half `--regroupings` times.
- Measures: the pick's within-group rank of surrogate accuracy (0 = best, 3 = worst), the share of groups
  where it is the best, the share where it differs from the aggregate's pick, and the paired bootstrap 95%
  interval (1,000 resamples of the groups) of its mean rank minus the aggregate's.
Writes `<out>/rules.csv` (every rule on every group set), `<out>/cv.csv` and `<out>/tournaments.md`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from fne.evolution.survival import split_into_tournaments, tournament_winner
from fne.reporting import markdown_table
from fne.scoring.aggregation import az_nas_log_rank

SCORES = ("az_expressivity", "linear_regions", "cell_breadth")  # the DARTS defaults (darts_space.py)
WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)  # prior weights w in nats per rank range
AGGREGATE = "aggregate (w = inf)"
MIXTURE_READINGS = ("mixture alpha", "mixture own path's held-out loss", "mixture without it (DARTS-PT)")


def cell_key(canonical: str) -> str:
    """The cache's key of a table cell (its cells on the search's initial shape)."""
    return "|".join(canonical.split("|")[:2]) + "|16.32.64|1.1.1"


def alone_readings(row: dict) -> dict[str, float]:
    """One cell's readings, higher = better: minus its held-out loss and minus its training speed after n steps."""
    losses = np.asarray(row["train_losses"], dtype=float)
    values = {f"alone held-out loss @{n}": -v for n, v in row["held_out"].items()}
    for n in (int(k) for k in row["held_out"] if int(k) > 0):
        values[f"alone TSE @{n}"] = -float(losses[:n].mean())
    return values


def alone_values(rows: list[dict]) -> pd.DataFrame:
    """Per cell (index) and reading (columns) at one thread (the study's setting; other thread counts are noise)."""
    return pd.DataFrame.from_dict({row["key"]: alone_readings(row) for row in rows if "threads" not in row["setting"]},
                                  orient="index")


def noise_band(rows: list[dict]) -> pd.DataFrame:
    """Per reading: the largest absolute difference between a cell's value at 1 thread and at 2 or 4 threads."""
    base = {row["key"]: alone_readings(row) for row in rows if "threads" not in row["setting"]}
    found: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if "threads" in row["setting"] and row["key"] in base:
            threads = row["setting"].split()[-1]
            for name, value in alone_readings(row).items():
                found.setdefault((name, threads), []).append(abs(value - base[row["key"]][name]))
    return pd.DataFrame([{"reading": name, "against 1 thread": threads, "cells": len(d), "max_abs_difference": max(d),
                          "mean_abs_difference": float(np.mean(d))} for (name, threads), d in found.items()])


def mixture_values(rows: list[dict]) -> dict[str, dict[str, np.ndarray]]:
    """Per played group and reading, one value per candidate in the group's order, higher = better."""
    readings = {}
    for row in rows:
        alphas = np.asarray(row["alphas"], dtype=float)
        readings[row["key"]] = {
            "mixture alpha": alphas - np.logaddexp.reduce(alphas),
            "mixture own path's held-out loss": -np.asarray(row["path_loss"]),
            "mixture without it (DARTS-PT)": np.asarray(row["without_loss"]) - row["mixture_loss"][0]}
    return readings


def group_outcome(accuracy: np.ndarray, aggregate: np.ndarray, values: np.ndarray | None, weight: float
                  ) -> tuple[int, bool]:
    """(within-group accuracy rank of the pick, 0 = best; whether it differs from the aggregate's pick)."""
    order = np.argsort(np.argsort(aggregate, kind="stable"), kind="stable")
    ranks = order / max(1, len(order) - 1)
    by_aggregate = int(np.argmin(order))
    pick = by_aggregate if values is None or np.isinf(weight) else tournament_winner(values, ranks, weight)
    return int((accuracy > accuracy[pick]).sum()), pick != by_aggregate


def outcomes(table: pd.DataFrame, groups: list[list[str]], readings: dict[str, object]) -> pd.DataFrame:
    """One row per (rule, group): the pick's rank and whether it differs from the aggregate's pick."""
    rows = []
    for number, group in enumerate(groups):
        part = table.loc[group]
        accuracy = part["val_accuracy"].to_numpy(float)
        aggregate = az_nas_log_rank(part[list(SCORES)].to_numpy(float))
        rank, _ = group_outcome(accuracy, aggregate, None, np.inf)
        rows.append({"rule": AGGREGATE, "reading": "", "w": np.inf, "group": number, "rank": rank, "differs": False})
        for reading, source in readings.items():
            values = source(group)
            if values is None:
                continue
            for weight in WEIGHTS:
                rank, differs = group_outcome(accuracy, aggregate, values, weight)
                rows.append({"rule": f"{reading}, w = {weight:g}", "reading": reading, "w": weight, "group": number,
                             "rank": rank, "differs": differs})
            # The value as one more score of the log-rank sum (as the finalists' last rung decides).
            fused = az_nas_log_rank(np.column_stack([part[list(SCORES)].to_numpy(float), -values]))
            pick, by_aggregate = int(np.argmin(fused)), int(np.argmin(aggregate))
            rows.append({"rule": f"{reading}, as a fourth score", "reading": reading, "w": np.nan, "group": number,
                         "rank": int((accuracy > accuracy[pick]).sum()), "differs": pick != by_aggregate})
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per rule: mean rank, best share, share differing, and the paired bootstrap interval against the aggregate."""
    base = frame[frame["rule"] == AGGREGATE].set_index("group")["rank"]
    rows = []
    for rule, part in frame.groupby("rule", sort=False):
        ranks = part.set_index("group")["rank"]
        diff = (ranks - base.loc[ranks.index]).to_numpy(float)
        boot = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
        low, high = np.percentile(diff[boot].mean(axis=1), [2.5, 97.5])
        rows.append({"rule": rule, "groups": len(ranks), "mean_rank": ranks.mean(),
                     "best_share": float((ranks == 0).mean()), "differs_share": float(part["differs"].mean()),
                     "minus_aggregate": diff.mean(), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def choose(frame: pd.DataFrame, groups: np.ndarray) -> str:
    """The rule with the lowest mean rank on these groups; ties to the larger w (the rule nearer the aggregate)."""
    part = frame[frame["group"].isin(groups)]
    means = part.groupby(["rule", "w"], sort=False)["rank"].mean().reset_index()
    means = means.sort_values(["rank", "w"], ascending=[True, False], kind="stable")
    return str(means.iloc[0]["rule"])


def cross_validate(frame: pd.DataFrame, splits: int, seed: int) -> pd.DataFrame:
    """Random halves of the groups: the rule chosen on each half, its rank and the aggregate's on the other."""
    numbers = np.sort(frame["group"].unique())
    rng = np.random.default_rng(seed)
    rows = []
    for split in range(splits):
        shuffled = rng.permutation(numbers)
        halves = (shuffled[:len(numbers) // 2], shuffled[len(numbers) // 2:])
        for half, (fit, judge) in enumerate((halves, halves[::-1])):
            rule = choose(frame, fit)
            held = frame[frame["group"].isin(judge)]
            rows.append({"split": split, "half": half, "chosen": rule,
                         "rank": held[held["rule"] == rule]["rank"].mean(),
                         "aggregate_rank": held[held["rule"] == AGGREGATE]["rank"].mean(),
                         "differs_share": held[held["rule"] == rule]["differs"].mean()})
    return pd.DataFrame(rows)


def regrouped_cv(table: pd.DataFrame, readings: dict, splits: int, regroupings: int, seed: int) -> pd.DataFrame:
    """Alone readings: cells halved, each half regrouped `regroupings` times; chosen on one, judged on the other."""
    rng = np.random.default_rng(seed)
    cells = np.asarray(table.index)
    rows = []
    for split in range(splits):
        shuffled = rng.permutation(cells)
        halves = []
        for half in (shuffled[:len(cells) // 2], shuffled[len(cells) // 2:]):
            groups = [[str(half[i]) for i in g] for _ in range(regroupings)
                      for g in split_into_tournaments(len(half), 4, rng)]
            halves.append(outcomes(table, groups, readings))
        for half, (fit, judge) in enumerate((halves, halves[::-1])):
            rule = choose(fit, fit["group"].unique())
            rows.append({"split": split, "half": half, "chosen": rule,
                         "rank": judge[judge["rule"] == rule]["rank"].mean(),
                         "aggregate_rank": judge[judge["rule"] == AGGREGATE]["rank"].mean(),
                         "differs_share": judge[judge["rule"] == rule]["differs"].mean()})
    return pd.DataFrame(rows)


def cv_summary(cv: pd.DataFrame) -> dict:
    """Held-out figures of a cross-validation: mean ranks, how often it beat the aggregate, what it chose."""
    diff = cv["rank"] - cv["aggregate_rank"]
    return {"choices": len(cv), "held-out mean rank": cv["rank"].mean(),
            "the aggregate's there": cv["aggregate_rank"].mean(), "difference": diff.mean(),
            "choices better / worse than the aggregate": f"{int((diff < 0).sum())} / {int((diff > 0).sum())}",
            "differs from the aggregate's pick": cv["differs_share"].mean(),
            "chosen (most often)": ", ".join(f"{r} ({n})" for r, n in cv["chosen"].value_counts().head(3).items())}


def parameter_free_edges(key: str) -> int:
    """Edges of the normal and the reduction cell whose op has no weights (skip, max and average pool, none)."""
    cells = key.split("|")[:2]
    return sum(character in "kman" for cell in cells for character in cell.replace("-", "")[::2])


def bias_table(table: pd.DataFrame, groups: list[list[str]], readings: dict[str, object]) -> pd.DataFrame:
    """Per reading: its mean within-group Spearman with accuracy, the aggregate, #params and parameter-free edges."""
    rows = []
    for reading, source in readings.items():
        found = {"accuracy": [], "the aggregate (best = high)": [], "#params": [], "parameter-free edges": []}
        for group in groups:
            values = source(group)
            if values is None:
                continue
            part = table.loc[group]
            others = {"accuracy": part["val_accuracy"].to_numpy(float),
                      "the aggregate (best = high)": -az_nas_log_rank(part[list(SCORES)].to_numpy(float)),
                      "#params": part["params"].to_numpy(float),
                      "parameter-free edges": np.array([parameter_free_edges(k) for k in group], dtype=float)}
            for name, other in others.items():
                if np.ptp(values) > 0 and np.ptp(other) > 0:
                    found[name].append(spearmanr(values, other)[0])
        if found["accuracy"]:
            rows.append({"reading (higher = preferred)": reading, "groups": len(found["accuracy"]),
                         **{f"rho with {name}": float(np.mean(v)) for name, v in found.items()}})
    return pd.DataFrame(rows)


def read_cache(path: Path) -> list[dict]:
    """The JSON lines of one cache file (none if it does not exist)."""
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def main() -> None:  # noqa: PLR0915 - one linear report
    """Judge every rule on the search's groups, cross-validate the choice, write the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scores", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--splits", type=int, default=50)
    parser.add_argument("--regroupings", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = pd.read_csv(args.scores)
    table.index = [cell_key(c) for c in table["canonical"]]
    alone = alone_values(read_cache(args.cache / "alone.jsonl"))
    mixture = mixture_values(read_cache(args.cache / "mixture.jsonl"))
    groups = [[str(table.index[i]) for i in g]
              for g in split_into_tournaments(len(table), 4, np.random.default_rng(args.seed))]
    alone_readings = {name: (lambda g, name=name: alone.loc[g, name].to_numpy(float)
                             if set(g) <= set(alone.index) else None) for name in alone.columns}
    mixture_readings = {name: (lambda g, name=name: mixture[";".join(g)][name] if ";".join(g) in mixture else None)
                        for name in MIXTURE_READINGS}
    frame = outcomes(table, groups, {**mixture_readings, **alone_readings})
    played = sorted({n for n, g in enumerate(groups) if ";".join(g) in mixture})
    complete = sorted(set(frame[frame["reading"].str.startswith("alone")]["group"]))
    alone_rows = frame["group"].isin(complete) & ~frame["reading"].str.startswith("mixture")
    sets = {f"the {len(played)} groups the mixture played, every reading": frame[frame["group"].isin(played)],
            f"the {len(complete)} groups of cells trained alone, alone readings": frame[alone_rows],
            f"the {len(complete)} groups of cells trained alone, training speed only": frame[alone_rows & ~frame[
                "reading"].str.contains("held-out")]}
    tables, cvs = [], []
    for label, part in sets.items():
        if part.empty:
            continue
        tables.append(summary(part).assign(groups_set=label))
        cvs.append(pd.DataFrame([cv_summary(cross_validate(part, args.splits, args.seed))]).assign(procedure=label))
    measured = table.loc[[c for c in table.index if c in alone.index]]
    for label, names in (("alone readings", list(alone.columns)),
                         ("training speed only", [n for n in alone.columns if "TSE" in n])):
        readings = {name: alone_readings[name] for name in names}
        regrouped = regrouped_cv(measured, readings, max(1, args.splits // 5), args.regroupings, args.seed)
        cvs.append(pd.DataFrame([cv_summary(regrouped)]).assign(
            procedure=f"{len(measured)} cells trained alone, halved and regrouped {args.regroupings} times, {label}"))
    rng = np.random.default_rng(args.seed + 1)
    many = [[str(measured.index[i]) for i in g] for _ in range(args.regroupings * 2)
            for g in split_into_tournaments(len(measured), 4, rng)]
    tables.append(summary(outcomes(measured, many, alone_readings)).assign(
        groups_set=f"{len(many)} groups: the {len(measured)} cells trained alone regrouped {args.regroupings * 2} "
                   "times (intervals optimistic: the groups share cells)"))
    rules = pd.concat(tables, ignore_index=True)
    bias = bias_table(table, groups, {**mixture_readings, **alone_readings})
    noise = noise_band(read_cache(args.cache / "alone.jsonl"))
    noise.to_csv(args.out / "noise.csv", index=False, float_format="%.3g")
    bias.to_csv(args.out / "bias.csv", index=False, float_format="%.4f")
    cv = pd.concat(cvs, ignore_index=True)
    rules.to_csv(args.out / "rules.csv", index=False, float_format="%.4f")
    cv.to_csv(args.out / "cv.csv", index=False, float_format="%.4f")
    text = ["# DARTS tournaments on the 600 shared NB301 cells", "",
            f"`python experiments/darts_tournament_cv.py {args.scores} --cache {args.cache} --out {args.out}`: "
            f"{len(groups)} groups of 4 formed as the search forms them (seed {args.seed}); the mixture played on "
            f"{len(played)} of them. Rank: the pick's within-group rank of surrogate accuracy (0 = best).", "",
            "## Cross-validated choice (chosen on one half, judged on the other)", "",
            markdown_table(cv.round(3)), "", "## What each reading prefers (mean within-group Spearman)", "",
            markdown_table(bias.round(3)), "", "## Noise across thread counts (cells trained alone)", "",
            markdown_table(noise) if len(noise) else "(not measured)", "", "## Every rule", ""]
    for label, part in rules.groupby("groups_set", sort=False):
        best = part.sort_values("mean_rank", kind="stable")
        text += [f"### {label}", "", markdown_table(best.drop(columns="groups_set").round(3)), ""]
    (args.out / "tournaments.md").write_text("\n".join(text))
    print("\n".join(text[:12]))


if __name__ == "__main__":
    main()
