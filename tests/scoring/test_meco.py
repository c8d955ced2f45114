"""MeCo against a hand-computed correlation spectrum and a naive re-implementation of its reference hook
(every module's output, the first image, torch.corrcoef, NaN -> 0, smallest real eigenvalue, summed)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from fne.scoring.fitness import FitnessConfig, score_network
from fne.scoring.probe_features import first_sample_correlation
from tests.scoring.nets import DARTS_ARCH, NB201_ARCH, tiny_net


def meco_of(model: nn.Module, x: torch.Tensor) -> tuple[float, dict]:
    values, errors = score_network(model, x, FitnessConfig(batch_size=2, heuristics=("meco",), device="cpu"))
    return values["meco"], errors


def test_correlation_of_the_first_image_with_a_constant_channel():
    x = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    x[0, 0] = torch.tensor([[1.0, 2], [3, 4]])
    x[0, 1] = torch.tensor([[2.0, 1], [4, 3]])  # channel 2 stays constant: undefined, zeroed
    x[1] = torch.randn(3, 2, 2, dtype=torch.float64)  # a second map of the batch: its own correlation
    expected = np.zeros((3, 3))
    expected[:2, :2] = np.corrcoef([[1, 2, 3, 4], [2, 1, 4, 3]])
    correlations = first_sample_correlation(x)
    assert np.allclose(correlations[0], expected)
    assert np.allclose(correlations[1], np.corrcoef(x[1].reshape(3, -1).numpy()))


def test_meco_survives_a_module_that_writes_a_recorded_map_in_place(labelled):
    # An in-place ReLU overwrites the BN output recorded before it: the probe notices (version counter) and
    # records again copying each map, so the score is the reference hook's, which copies nothing but runs
    # the correlation at once.
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
                          nn.Conv2d(4, 4, 3, padding=1)).double()
    x = labelled[0].double()[:4]
    value, errors = meco_of(model, x)
    assert not errors
    assert -value == pytest.approx(reference_meco(model, x), rel=1e-8, abs=1e-10)


def test_known_spectrum_counted_for_every_module():
    # First image: c0 = z0, c1 = z0 + sqrt(3) z1 (z0, z1 orthogonal, centred, variance 1): correlation 1/2,
    # eigenvalues 1 +- 1/2, minimum 1/2. Sequential and its Identity both output the map: 2 x 1/2.
    z0 = torch.tensor([1.0, -1, 1, -1], dtype=torch.float64)
    z1 = torch.tensor([1.0, 1, -1, -1], dtype=torch.float64)
    x = torch.randn(2, 2, 2, 2, dtype=torch.float64)
    x[0] = torch.stack([z0, z0 + math.sqrt(3) * z1]).reshape(2, 2, 2)
    value, errors = meco_of(nn.Sequential(nn.Identity()), x)
    assert not errors
    assert value == pytest.approx(-1.0, rel=1e-12)


def reference_meco(model: nn.Module, x: torch.Tensor) -> float:
    """MeCo's get_score(measure="meco") hook on every named module, train mode, on a copy of the model."""
    model = copy.deepcopy(model).train()
    results = []

    def hook(_module, _inputs, output):
        feature = output[0].detach()
        feature = feature.reshape(feature.shape[0], -1)
        correlation = torch.corrcoef(feature)
        correlation[torch.isnan(correlation)] = 0
        correlation[torch.isinf(correlation)] = 0
        results.append(float(torch.min(torch.real(torch.linalg.eig(correlation)[0]))))

    for _, module in model.named_modules():
        module.register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    return sum(r for r in results if math.isfinite(r))


@pytest.mark.filterwarnings("ignore:cov... degrees of freedom:UserWarning")  # the reference's 1-position maps
@pytest.mark.parametrize("space,arch", [("nb201", NB201_ARCH), ("darts", DARTS_ARCH)])
def test_matches_the_reference_hook(labelled, space, arch):
    model = tiny_net(space, arch)
    x = labelled[0].double()
    value, errors = meco_of(model, x)
    assert not errors
    assert -value == pytest.approx(reference_meco(model, x), rel=1e-8, abs=1e-10)
