"""Synflow against its closed form on bias-free networks: every weighted layer contributes R, the network's
summed output with absolute weights on an all-ones input (R is homogeneous of degree 1 in each layer)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from fne.scoring.fitness import FitnessConfig, score_network
from fne.scoring.probe_gradients import synflow_by_layer
from tests.scoring.nets import ALL_NONE, NB201_ARCH, tiny_net

CONFIG = FitnessConfig(batch_size=2, heuristics=("synflow",), device="cpu")


def test_linear_network_closed_form():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2, bias=False))
    w1, w2 = (model[i].weight.detach().double().abs().numpy() for i in (0, 2))
    R = float(np.ones(2) @ w2 @ w1 @ np.ones(3))
    assert np.allclose(synflow_by_layer(model, (3,)), [R, R], rtol=1e-12)
    values, errors = score_network(model, torch.ones(2, 3), CONFIG)
    assert not errors and values["synflow"] == pytest.approx(-math.log(2 * R), rel=1e-12)


def test_batch_norm_is_bypassed_and_the_model_left_unchanged():
    torch.manual_seed(1)
    conv, linear = nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.Linear(3 * 4 * 4, 5, bias=False)
    norm = nn.BatchNorm2d(3)
    with torch.no_grad():  # BatchNorm parameters and statistics far from identity: they must not matter
        norm.weight.fill_(-7.0)
        norm.bias.fill_(3.0)
        norm.running_mean.fill_(2.0)
    model = nn.Sequential(conv, norm, nn.ReLU(), nn.Flatten(), linear)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ones = torch.ones(1, 2, 4, 4, dtype=torch.float64)
    hidden = nn.functional.conv2d(ones, conv.weight.detach().double().abs(), padding=1)
    R = float((hidden.flatten(1) @ linear.weight.detach().double().abs().T).sum())
    assert np.allclose(synflow_by_layer(model, (2, 4, 4)), [R, R], rtol=1e-12)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]) and value.dtype == before[key].dtype, key


def test_nb201_is_finite_and_all_none_undefined(labelled):
    values, errors = score_network(tiny_net("nb201", NB201_ARCH, dtype=torch.float32), labelled[0], CONFIG)
    assert not errors and math.isfinite(values["synflow"])
    values, errors = score_network(tiny_net("nb201", ALL_NONE), labelled[0].double(), CONFIG)
    assert values["synflow"] == math.inf and "zero" in errors["synflow"]
