"""DARTS tournament: the supernet really mixes the candidates, really trains, and the sensible cell wins."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from fne.data.cifar10 import load_cifar10, subset, to_tensor, train_val_split
from fne.evolution.survival import split_into_tournaments
from fne.genotopheno.genotype import format_genotype, published
from fne.genotopheno.spaces import get_space
from fne.run.search import SearchConfig
from fne.training.tournament import (
    TournamentConfig,
    build_supernet,
    candidate_networks,
    run_tournament,
)

DARTS_V2 = format_genotype(published("DARTS_V2"))
DARTS_NONE = "n0n1-n0n1-n0n1-n0n1|n0n1-n0n1-n0n1-n0n1|16.32.64|1.1.1"
DARTS_POOL = "m0a1-m0a1-a2m1-m0a2|m0m1-m2m1-m0a2-a2m1|16.32.64|1.1.1"



@pytest.fixture(scope="module")
def three_classes():
    """Real CIFAR-10 images of 3 classes from the shipped sample, split half for weights, half for alpha."""
    arrays = subset(load_cifar10(None), 300, 0, classes=["airplane", "automobile", "bird"], relabel=True)
    train, held_out = train_val_split(arrays, 0.5, 0)
    return to_tensor(arrays.take(train)), to_tensor(arrays.take(held_out))


@pytest.mark.parametrize("name", ["darts", "nb201"])
def test_supernet_with_one_dominant_alpha_is_that_candidates_network(name):
    space = get_space(name)
    candidates = [DARTS_V2, DARTS_POOL] if name == "darts" else ["C+CC+kCC", "a+aa+aaa"]
    config = TournamentConfig(C=4)
    networks = candidate_networks(space, candidates, config, num_classes=3, seed=0)
    supernet = build_supernet(networks, space.tournament_layout).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        supernet.alpha.copy_(torch.tensor([60.0, -60.0]))  # softmax -> (1, 0) to float precision
        mixed = supernet(x)
        alone = networks[0].eval()(x)
    # The stem and head are candidate 0's; every cell position then passes candidate 0's cell only.
    assert torch.allclose(mixed, alone, atol=1e-5)


@pytest.mark.parametrize("name, candidates, good", [
    ("nb201", ["n+nn+nnn", "a+aa+aaa", "C+CC+kCC"], 2),
    ("darts", [DARTS_POOL, DARTS_NONE, DARTS_V2], 2),
])
def test_tournament_picks_the_sensible_cell(three_classes, name, candidates, good):
    train, held_out = three_classes
    # The supernet at the space's defaults (darts: C=4, batch 16, 12 steps; nb201: C=8, batch 32, 30 steps).
    config = replace(SearchConfig(space=name).tournament_config(), size=3)
    result = run_tournament(get_space(name), candidates, train, held_out, config, seed=0)
    assert result.winner == good
    dead = candidates.index("n+nn+nnn" if name == "nb201" else DARTS_NONE)
    assert np.isnan(result.alphas[dead]) and result.weights[dead] == 0.0  # disqualified: ignores its input
    assert result.weights[good] > 0.5
    # It trained: cross-entropy on 3 classes starts at ln 3 = 1.10.
    assert result.train_loss < 1.0


def test_tournament_is_reproducible(three_classes):
    train, held_out = three_classes
    config = TournamentConfig(size=2, steps=4, warmup_steps=1, C=4)
    space = get_space("nb201")
    first = run_tournament(space, ["C+CC+kCC", "a+aa+aaa"], train, held_out, config, seed=5)
    second = run_tournament(space, ["C+CC+kCC", "a+aa+aaa"], train, held_out, config, seed=5)
    assert first.alphas == second.alphas and first.train_loss == second.train_loss


def test_offspring_are_split_into_tournaments_of_k():
    rng = np.random.default_rng(0)
    groups = split_into_tournaments(10, 4, rng)
    assert [len(g) for g in groups] == [4, 4, 2]
    assert sorted(i for g in groups for i in g) == list(range(10))
    # A remainder of one cannot play alone: it joins the last full group.
    assert [len(g) for g in split_into_tournaments(9, 4, rng)] == [4, 5]
