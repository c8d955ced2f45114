"""How well does one DARTS tournament pick the truly best of k NB201 cells? (ground truth only for scoring)

Draws random groups of k NB201 cells, runs the search's tournament on each (default TournamentConfig,
the shipped 1,000-image CIFAR-10 sample split 50/50 as the search does), and records where the winner
ranks by true NB201 accuracy inside its group. A random pick would be the group's best 1/k of the time,
with mean rank (k + 1) / 2.

    python experiments/tournament_quality.py --groups 20 --steps 30

Writes experiments/results/tournament_quality.csv and prints a summary.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fne.data.cifar10 import load_cifar10, to_tensor, train_val_split
from fne.genotopheno.nb201 import from_arch_str
from fne.genotopheno.spaces import get_space
from fne.training.tournament import TournamentConfig, run_tournament

ROOT = Path(__file__).resolve().parents[1]
GROUND_TRUTH = ROOT.parent / "shared" / "data" / "nb201" / "nb201_cifar10.csv"


def main() -> None:
    """Run the tournaments and summarise the winners' true-accuracy ranks."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--normalise-mixture", action="store_true", help="BatchNorm after each cell mixture")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "tournament_quality.csv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    truth = pd.read_csv(GROUND_TRUTH)
    accuracy = dict(zip(map(from_arch_str, truth["arch_str"]), truth["cifar10_test"], strict=True))
    space = get_space("nb201")
    arrays = load_cifar10(None)
    train, held_out = train_val_split(arrays, 0.5, args.seed)
    train, held_out = to_tensor(arrays.take(train)), to_tensor(arrays.take(held_out))
    config = TournamentConfig(size=args.size, steps=args.steps, warmup_steps=args.steps // 3,
                              normalise_mixture=args.normalise_mixture)
    rng = np.random.default_rng(args.seed)
    rows = []
    for group in range(args.groups):
        candidates = [space.sample(rng) for _ in range(args.size)]
        result = run_tournament(space, candidates, train, held_out, config, seed=args.seed * 1000 + group)
        true = np.array([accuracy[c] for c in candidates])
        # Rank 1 = truly best in the group (ties share the better rank).
        rank = 1 + int((true > true[result.winner]).sum())
        rows.append({"group": group, "candidates": ";".join(candidates), "true_accuracy": ";".join(map(str, true)),
                     "weights": ";".join(f"{w:.3f}" for w in result.weights), "winner": candidates[result.winner],
                     "winner_accuracy": true[result.winner], "group_best": true.max(), "group_mean": true.mean(),
                     "winner_rank": rank, "seconds": result.seconds})
        print(rows[-1]["winner"], rank, f"{true[result.winner]:.2f} vs best {true.max():.2f}", flush=True)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    k = args.size
    print(f"{len(table)} tournaments of {k}: winner is the group's best {100 * (table.winner_rank == 1).mean():.0f}% "
          f"of the time (random {100 / k:.0f}%), mean rank {table.winner_rank.mean():.2f} (random {(k + 1) / 2:.2f}); "
          f"winner accuracy {table.winner_accuracy.mean():.2f}% vs group mean {table.group_mean.mean():.2f}%, "
          f"{table.seconds.mean():.1f} s per tournament")


if __name__ == "__main__":
    main()
