"""AZ-NAS's expressivity, progressivity and trainability against hand-computed values and a naive re-implementation
of the reference (cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/compute_az_nas_score.py) on a tiny NB201 net."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from fne.scoring.az_nas import eigen_entropy
from fne.scoring.fitness import FitnessConfig, score_network
from fne.scoring.probe_features import channel_covariance, network_blocks
from tests.scoring.nets import DARTS_ARCH, IDENTITY_CELL, NB201_ARCH, tiny_net

AZ = ("az_expressivity", "az_progressivity", "az_trainability")


class Scale(nn.Module):
    """x -> a x: a block whose Jacobian is a times the identity."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.factor * x


class Chain(nn.Module):
    """Blocks applied in turn; `blocks()` names them, as fne's networks do."""

    def __init__(self, *blocks: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def blocks(self) -> list[nn.Module]:
        return list(self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.flatten(1)


def scores(model: nn.Module, x: torch.Tensor, names=AZ, seed: int = 0, **config) -> tuple[dict, dict]:
    return score_network(model, x, FitnessConfig(batch_size=2, heuristics=names, device="cpu", **config), seed=seed)


def entropy(p: list[float]) -> float:
    return -sum(q * math.log(q + 1e-8) for q in p)


# ---------------------------------------------------------------- hand-computed
def test_entropy_of_a_known_spectrum():
    assert eigen_entropy(np.diag([1.0, 1.0, 2.0])) == pytest.approx(entropy([0.25, 0.25, 0.5]), rel=1e-12)
    assert eigen_entropy(np.eye(5)) == pytest.approx(math.log(5), rel=1e-7)  # isotropic: the maximum


def test_expressivity_and_progressivity_of_features_with_a_known_covariance():
    # One image, 2 x 2 positions: channel 0 = z0, channel 1 = sqrt(3) z1, z0 and z1 centred, orthogonal,
    # variance 1, so the covariance is diag(1, 3) and p = (1/4, 3/4); scaling by 2 keeps p.
    z0, z1 = torch.tensor([1.0, -1, 1, -1], dtype=torch.float64), torch.tensor([1.0, 1, -1, -1], dtype=torch.float64)
    x = torch.stack([z0, math.sqrt(3) * z1]).reshape(1, 2, 2, 2)
    assert np.allclose(channel_covariance(x), np.diag([1.0, 3.0]))
    values, errors = scores(Chain(Scale(1.0), Scale(2.0)), x, names=("az_expressivity", "az_progressivity"))
    assert not errors
    assert values["az_expressivity"] == pytest.approx(-2 * entropy([0.25, 0.75]), rel=1e-12)
    assert values["az_progressivity"] == pytest.approx(0.0, abs=1e-12)


def test_trainability_of_scaling_blocks_is_the_closed_form():
    # One channel: g_in = a g_out, so the 1 x 1 cross-covariance is a * mean(g_out^2) = a exactly.
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    values, errors = scores(Chain(Scale(2.0), Scale(3.0), Scale(0.5)), x, names=("az_trainability",))
    assert not errors
    per_pair = [2 - a - 1 / (a + 1e-6) for a in (3.0, 0.5)]
    assert values["az_trainability"] == pytest.approx(-np.mean(per_pair), rel=1e-12)


def test_an_identity_block_makes_trainability_undefined(labelled):
    values, errors = scores(Chain(Scale(2.0), Scale(1.0)), torch.ones(2, 1, 2, 2), names=("az_trainability",))
    assert values["az_trainability"] == math.inf and "identity" in errors["az_trainability"]
    values, errors = scores(tiny_net("nb201", IDENTITY_CELL), labelled[0].double(), names=("az_trainability",))
    assert values["az_trainability"] == math.inf and "identity" in errors["az_trainability"]


# ---------------------------------------------------------------- the reference, naively
def reference_az_nas(model: nn.Module, x: torch.Tensor, seed: int) -> dict[str, float]:
    """AZ-NAS's procedure step by step: TinyNetwork.extract_cell_features in train mode, per-feature numpy
    covariance, and the "straight-forward way" (a per-position outer product) of the trainability matrix."""
    model = copy.deepcopy(model).train()
    features = [model.stem(x)]
    for cell in model.cells:
        features.append(cell(features[-1]))
    entropies = []
    for feature in features:
        rows = feature.detach().permute(0, 2, 3, 1).reshape(-1, feature.shape[1]).numpy()
        eigenvalues = np.linalg.eigvalsh(np.cov(rows, rowvar=False, bias=True))
        entropies.append(entropy(list(eigenvalues / eigenvalues.sum())))
    generator = torch.Generator().manual_seed(seed)
    per_pair = []
    for i in reversed(range(1, len(features))):
        f_in, f_out = features[i - 1], features[i]
        g_out = (torch.rand(f_out.shape, generator=generator, dtype=f_out.dtype) < 0.5).to(f_out.dtype) * 2 - 1
        (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True)
        if g_in.shape[2] != g_out.shape[2]:
            g_in = nn.PixelUnshuffle(g_in.shape[2] // g_out.shape[2])(g_in)
        outer = [torch.outer(g_in[b, :, h, w], g_out[b, :, h, w]) for b in range(g_out.shape[0])
                 for h in range(g_out.shape[2]) for w in range(g_out.shape[3])]
        top = float(torch.linalg.svdvals(torch.stack(outer).mean(0)).max())
        per_pair.append(2 - top - 1 / (top + 1e-6))
    return {"az_expressivity": -sum(entropies), "az_progressivity": -min(np.diff(entropies)),
            "az_trainability": -float(np.mean(per_pair))}


def test_nb201_scores_match_the_reference_procedure(labelled):
    model = tiny_net("nb201", NB201_ARCH)
    x = labelled[0].double()
    values, errors = scores(model, x, seed=123)
    assert not errors
    expected = reference_az_nas(model, x, seed=123)
    for name in AZ:
        assert values[name] == pytest.approx(expected[name], rel=1e-9), name


# ---------------------------------------------------------------- blocks
def test_blocks_are_the_stem_and_every_cell():
    nb201 = tiny_net("nb201", NB201_ARCH)
    assert network_blocks(nb201) == [nb201.stem, *nb201.cells] and len(nb201.cells) == 5  # 3 cells, 2 ResNet
    darts = tiny_net("darts", DARTS_ARCH)
    assert network_blocks(darts) == [darts.stem, *darts.cells]
    # Without blocks(): top-level children, module lists expanded.
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert network_blocks(plain) == list(plain)
    holder = nn.Module()
    holder.first, holder.rest = nn.Conv2d(3, 3, 1), nn.ModuleList([nn.ReLU(), nn.Identity()])
    assert network_blocks(holder) == [holder.first, *holder.rest]


def test_darts_network_is_scored(labelled):
    values, errors = scores(tiny_net("darts", DARTS_ARCH), labelled[0].double())
    assert not errors and all(math.isfinite(v) for v in values.values())
