"""NTK init noise: the NTK score of the first 40 architectures of the seed-0 sample at three init seeds.

Run from the repo root: python report/heuristics/tuning/ntk_init_noise.py  (result: ntk_init_noise.txt)
"""

import numpy as np
import pandas as pd
import torch
from scipy import stats

from fne.data.cifar10 import heuristic_batch
from fne.genotopheno.spaces import get_space
from fne.scoring.fitness import FitnessConfig, score_genotypes
from fne.study.score_study import sample_rows


def main() -> None:
    torch.set_num_threads(1)
    space = get_space("nb201")
    table = sample_rows(pd.read_csv("../shared/data/nb201/nb201_cifar10.csv"), 40, 0)
    images = heuristic_batch(None, 64, 0)
    scores = {}
    for seed in (0, 1, 2):
        config = FitnessConfig(seed=seed, heuristics=("ntk",))
        scores[seed] = score_genotypes(space, list(table.arch_str), images, config).ntk.to_numpy()
        print(seed, flush=True)
    accuracy = table.cifar10_test.to_numpy()
    for seed, values in scores.items():
        print("seed", seed, "rho", stats.spearmanr(-values, accuracy).statistic)
    print("seed-seed", stats.spearmanr(scores[0], scores[1]).statistic, stats.spearmanr(scores[0], scores[2]).statistic)
    mean = np.mean(list(scores.values()), 0)
    geometric = np.exp(np.mean(np.log(list(scores.values())), 0))
    print("mean3", stats.spearmanr(-mean, accuracy).statistic, "geo3", stats.spearmanr(-geometric, accuracy).statistic)


if __name__ == "__main__":
    main()
