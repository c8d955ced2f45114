"""ZiCo against a hand-computed gradient table and a naive re-implementation of the reference procedure
(AZ-NAS's NB201 compute_zico_score.py: train mode, two mini-batches, zero_grad, loss.backward, .grad)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fne.genotopheno.spaces import get_space
from fne.scoring.fitness import FitnessConfig, score_genotypes, score_network
from fne.scoring.probe_gradients import LossGradients
from fne.scoring.zico import zico_score
from tests.scoring.nets import ALL_NONE, DARTS_ARCH, NB201_ARCH, tiny_net

CONFIG = FitnessConfig(batch_size=2, heuristics=("zico",), device="cpu")


def test_hand_computed_gradient_table():
    # Layer 1: entry 0 has mean|g| = 2, std = 1 (ratio 2); entry 1 has std 0 (left out) -> log 2.
    # Layer 2: mean|g| = 1, std = 1 -> log 1 = 0. Layer 3: all zero -> skipped.
    layers = (np.array([[1.0, 2.0], [3.0, 2.0]]), np.array([[1.0], [-1.0]]), np.zeros((2, 3)))
    flat = torch.from_numpy(np.concatenate(layers, axis=1))
    total, none_contribute = zico_score(LossGradients(flat, (2, 1, 3)))
    assert float(total) == pytest.approx(math.log(2.0), rel=1e-15) and not bool(none_contribute)
    _, none_contribute = zico_score(LossGradients(torch.zeros(2, 4, dtype=torch.float64), (1, 3)))
    assert bool(none_contribute)


def reference_zico(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Two mini-batches (the halves), each: zero_grad, forward in train mode, cross-entropy, backward; per
    Conv2d/Linear weight np.std / mean |grad| over the two, summed log of the ratio sums."""
    model = copy.deepcopy(model).train()
    grads: dict[str, list[np.ndarray]] = {}
    for xb, yb in ((x[:len(x) // 2], y[:len(y) // 2]), (x[len(x) // 2:], y[len(y) // 2:])):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        for name, module in model.named_modules():
            if isinstance(module, nn.Conv2d | nn.Linear) and module.weight.grad is not None:
                grads.setdefault(name, []).append(module.weight.grad.reshape(-1).numpy().copy())
    total = 0.0
    for per_batch in grads.values():
        per_batch = np.array(per_batch)
        std = np.std(per_batch, axis=0)
        nonzero = np.nonzero(std)[0]
        ratio_sum = np.sum(np.mean(np.abs(per_batch), axis=0)[nonzero] / std[nonzero])
        if ratio_sum != 0:
            total += np.log(ratio_sum)
    return float(total)


@pytest.mark.parametrize("space,arch", [("nb201", NB201_ARCH), ("darts", DARTS_ARCH)])
def test_matches_the_reference_procedure(labelled, space, arch):
    x, y = labelled
    model = tiny_net(space, arch)
    values, errors = score_network(model, x.double(), CONFIG, labels=y)
    assert not errors
    assert -values["zico"] == pytest.approx(reference_zico(model, x.double(), y), rel=1e-9)


def test_without_labels_it_is_undefined_with_the_reason(labelled):
    values, errors = score_network(tiny_net("nb201", NB201_ARCH), labelled[0].double(), CONFIG)
    assert values["zico"] == math.inf and "labels" in errors["zico"]


def test_score_genotypes_passes_the_labels(labelled):
    x, y = labelled
    config = FitnessConfig(batch_size=8, heuristics=("zico",), device="cpu", C=4, layers=1)
    table = score_genotypes(get_space("nb201"), [NB201_ARCH, ALL_NONE], x, config, labels=y)
    assert math.isfinite(table.zico[0])
    assert table.zico[1] == math.inf and "zico" in table.error[1]  # no gradient reaches any weight twice
    unlabelled = score_genotypes(get_space("nb201"), [NB201_ARCH], x, config)
    assert unlabelled.zico[0] == math.inf and "labels" in unlabelled.error[0]
