"""NTK over weights only (TE-NAS keeps parameters named *weight*) vs all trainable parameters, first 200 archs.

Run from the repo root after the 1,000-architecture run: python report/heuristics/tuning/ntk_weights_only.py
Result (2026-11-25): ntk rho 0.6712 (weights only) vs 0.6703 (all); rank-combined rho 0.7880 vs 0.7876.
"""

import numpy as np
import pandas as pd
import torch
from scipy import stats

from fne.data.cifar10 import heuristic_batch
from fne.genotopheno.spaces import get_space
from fne.scoring.fitness import FitnessConfig, candidate_seed, score_network
from fne.study.score_study import rank_combined, sample_rows


def main() -> None:
    torch.set_num_threads(1)
    space = get_space("nb201")
    table = sample_rows(pd.read_csv("../shared/data/nb201/nb201_cifar10.csv"), 200, 0)
    images = heuristic_batch(None, 64, 0)
    config = FitnessConfig(heuristics=("ntk",))
    weights_only = []
    for arch in table.arch_str:
        genotype = space.canonical(arch)
        model = space.build(genotype, seed=candidate_seed(0, genotype))
        for name, parameter in model.named_parameters():
            parameter.requires_grad_("weight" in name)
        weights_only.append(score_network(model, images, config)[0]["ntk"])
    scores = pd.read_csv("report/heuristics/scores.csv").iloc[:200].reset_index(drop=True)
    assert list(scores.arch_str) == list(table.arch_str)
    accuracy = table.cifar10_test.to_numpy()
    variant = scores.assign(ntk=np.array(weights_only))
    columns = ["ntk", "linear_regions", "grad_corr"]
    print("ntk rho: weights only", stats.spearmanr(-variant.ntk, accuracy).statistic,
          "all", stats.spearmanr(-scores.ntk, accuracy).statistic)
    print("rank-combined rho: weights only", stats.spearmanr(-rank_combined(variant, columns), accuracy).statistic,
          "all", stats.spearmanr(-rank_combined(scores, columns), accuracy).statistic)


if __name__ == "__main__":
    main()
