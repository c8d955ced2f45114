"""SWAP against a hand-counted set of activation patterns and a naive re-implementation of the reference
(pym1024/SWAP src/metrics/swap.py: ReLU outputs of 4-D inputs, concatenated, sign, unique rows)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from fne.data.cifar10 import heuristic_batch
from fne.scoring.fitness import FitnessConfig, score_network
from fne.scoring.heuristics import probe_network
from fne.scoring.probe_features import SWAP_SAMPLES
from fne.scoring.swap import SWAP_MU_MILLIONS, SWAP_SIGMA, swap_log_regularisation
from tests.scoring.nets import DARTS_ARCH, NB201_ARCH, tiny_net


def test_hand_counted_patterns_and_the_size_window():
    # Three images, four units (one channel, 1 x 4): patterns over the images (1,0,1), (1,0,1), (0,0,0),
    # (1,1,1): three distinct. The model has no parameter: log f = -(0 - mu)^2 / sigma.
    x = torch.tensor([[1.0, 2.0, -1.0, 3.0], [-1.0, -2.0, 0.0, 1.0], [5.0, 1.0, -3.0, 2.0]]).reshape(3, 1, 1, 4)
    values, errors = score_network(nn.Sequential(nn.ReLU()), x,
                                   FitnessConfig(batch_size=2, heuristics=("swap",), device="cpu"))
    assert not errors
    assert values["swap"] == pytest.approx(-(math.log(3) - SWAP_MU_MILLIONS**2 / SWAP_SIGMA), rel=1e-12)


def test_size_window_is_a_gaussian_in_millions_of_parameters():
    assert swap_log_regularisation(1_500_000, mu=1.5, sigma=2.0) == 0.0
    assert swap_log_regularisation(500_000, mu=1.5, sigma=2.0) == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        swap_log_regularisation(1, sigma=0.0)


def reference_swap_count(model: nn.Module, x: torch.Tensor, samples: int) -> int:
    """The reference's count: hook every nn.ReLU whose input is 4-D, cat the flattened outputs, sign, unique
    (over the first `samples` images of the batch: fne's probe batch is larger than SWAP's 16)."""
    features = []

    def hook(_module, inputs, output):
        if len(inputs[0].size()) == 4:
            features.append(output.detach())

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    model.train()
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    activations = torch.cat([f[:samples].reshape(samples, -1) for f in features], 1)
    return torch.unique(torch.sign(activations).T, dim=0).size(0)


@pytest.mark.parametrize("space,arch", [("nb201", NB201_ARCH), ("darts", DARTS_ARCH)])
def test_count_matches_the_reference_on_the_first_images(space, arch):
    x = heuristic_batch(None, SWAP_SAMPLES + 4, seed=1).double()  # more images than SWAP counts over
    model = tiny_net(space, arch)
    probe = probe_network(model, x, {"relu_patterns"})
    assert probe.features.relu_patterns == reference_swap_count(model, x, SWAP_SAMPLES)
    assert 1 < probe.features.relu_patterns < probe.features.relu_units
