"""Every registered heuristic on tiny networks: finite, deterministic under the seed, and the same value
whether asked for alone or with all the others (the shared passes never change a score)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from fne.data.cifar10 import heuristic_batch, heuristic_labelled_batch, load_cifar10, subset
from fne.genotopheno.spaces import get_space
from fne.scoring.fitness import HEURISTICS, FitnessConfig, needs_labels, score_genotypes, score_network
from tests.scoring.nets import DARTS_ARCH, NB201_ARCH, tiny_net

BUILT_IN = {"ntk", "linear_regions", "grad_corr", "az_expressivity", "az_progressivity", "az_trainability",
            "log_flops", "log_params", "meco", "swap", "synflow", "zico", "cell_breadth"}
CELL_SPACE_ONLY = {"cell_breadth"}  # reads DARTS-style cells: undefined (+inf, reason recorded) on NB201
NB201_ARCHS = [NB201_ARCH, "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|avg_pool_3x3~1|"
                           "nor_conv_1x1~2|"]


def test_importing_fitness_registers_every_built_in_score():
    assert BUILT_IN <= set(HEURISTICS)
    assert needs_labels(["zico"]) and not needs_labels(["ntk", "meco", "az_trainability"])


def score_all(space: str, archs: list[str], C: int, labelled) -> pd.DataFrame:
    x, y = labelled
    layers = 1 if space == "nb201" else None
    config = FitnessConfig(batch_size=8, seed=3, device="cpu", heuristics=tuple(HEURISTICS), C=C, layers=layers)
    return score_genotypes(get_space(space), archs, x, config, labels=y)


@pytest.mark.parametrize("space,archs,C", [("nb201", NB201_ARCHS, 4), ("nb201", NB201_ARCHS[:1], 8),
                                           ("darts", [DARTS_ARCH], 4)])
def test_every_heuristic_is_finite_and_deterministic(labelled, space, archs, C):
    first = score_all(space, archs, C, labelled)
    again = score_all(space, archs, C, labelled)
    names = [n for n in HEURISTICS if space == "darts" or n not in CELL_SPACE_ONLY]
    expected_error = "" if space == "darts" else "cell_breadth: no normal DARTS-style cell"
    assert first.error.str.startswith(expected_error).all(), first.error.tolist()
    assert np.isfinite(first[names].to_numpy(dtype=float)).all()
    assert space == "darts" or np.isinf(first["cell_breadth"]).all()
    pd.testing.assert_frame_equal(first[list(HEURISTICS)], again[list(HEURISTICS)], check_exact=True)


def test_each_score_is_the_same_alone_and_together(labelled):
    x, y = labelled
    model = tiny_net("nb201", NB201_ARCH, dtype=torch.float32)
    names = tuple(n for n in HEURISTICS if n not in CELL_SPACE_ONLY)
    together, errors = score_network(model, x, FitnessConfig(batch_size=8, heuristics=names,
                                                             device="cpu"), labels=y, seed=5)
    assert not errors
    for name in names:
        alone, _ = score_network(model, x, FitnessConfig(batch_size=8, heuristics=(name,), device="cpu"),
                                 labels=y, seed=5)
        assert alone[name] == together[name], name  # bit for bit


def test_complexity_scores_are_the_counted_sizes(labelled):
    x, y = labelled
    config = FitnessConfig(batch_size=8, heuristics=("log_flops", "log_params"), device="cpu", C=4, layers=1)
    row = score_genotypes(get_space("nb201"), [NB201_ARCH], x, config).iloc[0]
    assert row.log_flops == pytest.approx(-math.log(row.flops), rel=1e-15)
    assert row.log_params == pytest.approx(-math.log(row.params), rel=1e-15)
    # Without the counts in the context the scores count for themselves, to the same values.
    model = get_space("nb201").build(NB201_ARCH, C=4, layers=1, seed=0)
    alone, _ = score_network(model, x, config)
    assert alone == {"log_flops": row.log_flops, "log_params": row.log_params}


def test_a_different_seed_draws_other_trainability_signals(labelled):
    model = tiny_net("nb201", NB201_ARCH)
    config = FitnessConfig(batch_size=8, heuristics=("az_trainability",), device="cpu")
    a, b = (score_network(model, labelled[0].double(), config, seed=s)[0]["az_trainability"] for s in (1, 2))
    assert a != b and math.isfinite(a) and math.isfinite(b)


def test_labelled_batch_is_the_heuristic_batch_with_its_labels():
    images, labels = heuristic_labelled_batch(None, 20, 4)
    assert torch.equal(images, heuristic_batch(None, 20, 4))
    assert torch.equal(labels, torch.from_numpy(subset(load_cifar10(None, "train"), 20, 4).labels))
    assert np.bincount(labels.numpy(), minlength=10).tolist() == [2] * 10  # class-balanced


def test_scoring_leaves_the_model_as_it_was(labelled):
    x, y = labelled
    model = tiny_net("nb201", NB201_ARCH, dtype=torch.float32)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    score_network(model, x, FitnessConfig(batch_size=8, heuristics=tuple(HEURISTICS), device="cpu"), labels=y)
    assert model.training and flags == [p.requires_grad for p in model.parameters()]
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # running statistics and batch counts included
