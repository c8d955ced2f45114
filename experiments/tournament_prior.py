"""Cost/benefit of the DARTS tournament, alone and combined with the heuristic prior (ground truth only judges).

    python experiments/tournament_prior.py

Re-uses the tournaments played by experiments/tournament_quality.py (the same 20 random groups of 4 NB201
cells at 30 and 60 supernet steps; each row holds the softmax weights of the group's candidates), scores
the 80 candidates with fne's default heuristics (the search's probe: 64 shipped images, seed 0), and
picks each group's winner as the search's TournamentSurvival would for a prior weight w:

    winner = argmax_i  log softmax(alpha)_i  -  w * r_i,   r_i = (rank of i by rank_combined in its group - 1) / (k - 1)

w = 0 is the plain tournament (max alpha), a large w the heuristic pick alone (no training needed). The
table gives, per setting, how often the winner is the group's truly best, its mean true-accuracy rank
(1 = best, random 2.5), and the CPU seconds per tournament (the supernet training; 0 for the heuristic
pick alone). Writes experiments/results/tournament_prior.csv and .md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import fne
from fne.reporting import markdown_table
from fne.scoring.aggregation import AGGREGATES
from fne.scoring.fitness import DEFAULT_HEURISTICS

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
PLAYED = {"30 steps": RESULTS / "tournament_quality.csv", "60 steps": RESULTS / "tournament_quality_60steps.csv"}
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 1e6)


def group_ranks(scores: pd.DataFrame, candidates: list[str], aggregate: str) -> np.ndarray:
    """r_i in [0, 1]: each candidate's rank by the aggregate within its group, 0 = best."""
    values = AGGREGATES[aggregate](scores.loc[candidates], list(DEFAULT_HEURISTICS))
    order = pd.Series(values).rank(method="average").to_numpy()
    return (order - 1) / max(1, len(candidates) - 1)


def evaluate(played: pd.DataFrame, scores: pd.DataFrame, weight: float, aggregate: str) -> dict[str, float]:
    """Share of groups whose winner is the truly best, and the winner's mean true rank, at prior weight w."""
    best, ranks = [], []
    for row in played.itertuples():
        candidates = row.candidates.split(";")
        truth = np.array([float(v) for v in row.true_accuracy.split(";")])
        weights = np.array([float(v) for v in row.weights.split(";")])
        logits = np.log(np.clip(weights, 1e-12, None))
        winner = int(np.argmax(logits - weight * group_ranks(scores, candidates, aggregate)))
        ranks.append(1 + int((truth > truth[winner]).sum()))
        best.append(ranks[-1] == 1)
    return {"winner_is_best": float(np.mean(best)), "mean_rank": float(np.mean(ranks))}


def main() -> None:
    """Score the candidates, evaluate every (steps, w) setting, write the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--aggregate", default="az_nas")
    parser.add_argument("--out", type=Path, default=RESULTS / "tournament_prior.csv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    played = {label: pd.read_csv(path) for label, path in PLAYED.items() if path.is_file()}
    genotypes = sorted({g for table in played.values() for c in table["candidates"] for g in c.split(";")})
    scores = fne.score(genotypes, "nb201", device="cpu").set_index("genotype")
    rows = []
    first = next(iter(played.values()))
    for weight in WEIGHTS:
        if weight >= 1e6:
            rows.append({"setting": "heuristic prior alone (no training)", "w": "inf", "seconds": 0.0,
                         **evaluate(first, scores, weight, args.aggregate)})
            continue
        for label, table in played.items():
            rows.append({"setting": f"tournament {label}", "w": weight, "seconds": float(table["seconds"].mean()),
                         **evaluate(table, scores, weight, args.aggregate)})
    result = pd.DataFrame(rows)
    result.to_csv(args.out, index=False, float_format="%.3f")
    text = ["# The tournament's cost and benefit, with and without the heuristic prior", "",
            f"`python experiments/tournament_prior.py` ({len(first)} groups of 4 NB201 cells; prior: "
            f"{args.aggregate} rank_combined of {', '.join(DEFAULT_HEURISTICS)}; random pick: best 25%, rank 2.50).",
            "", markdown_table(result.round(3)), ""]
    args.out.with_suffix(".md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    main()
