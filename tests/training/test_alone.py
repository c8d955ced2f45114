"""Tournaments judged by training speed: each candidate trained alone on the same batches, against a hand loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fne.data.cifar10 import load_cifar10, subset, to_tensor, train_val_split
from fne.genotopheno.genotype import format_genotype, published
from fne.genotopheno.spaces import get_space
from fne.run.config import SearchConfig, config_from_dict, run_config_dict
from fne.training.alone import run_alone_tournament, train_alone
from fne.training.tournament import TournamentConfig

DARTS_V2 = format_genotype(published("DARTS_V2"))
DARTS_NONE = "n0n1-n0n1-n0n1-n0n1|n0n1-n0n1-n0n1-n0n1|16.32.64|1.1.1"
DARTS_POOL = "m0a1-m0a1-a2m1-m0a2|m0m1-m2m1-m0a2-a2m1|16.32.64|1.1.1"
CONFIG = TournamentConfig(size=3, steps=4, warmup_steps=0, batch_size=8, C=4, judge="training_speed")


@pytest.fixture(scope="module")
def three_classes():
    """Real CIFAR-10 images of 3 classes from the shipped sample, split half for training, half held out."""
    arrays = subset(load_cifar10(None), 60, 0, classes=["airplane", "automobile", "bird"], relabel=True)
    train, held_out = train_val_split(arrays, 0.5, 0)
    return to_tensor(arrays.take(train)), to_tensor(arrays.take(held_out))


def hand_training_speed(genotype: str, train, seed: int) -> float:
    """Oracle: plain SGD steps over seeded permutations of the training images; minus the mean loss."""
    network = get_space("darts").tournament_network(genotype, C=CONFIG.C, cells_per_stage=1, num_classes=3,
                                                    seed=seed).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=CONFIG.weight_lr, momentum=CONFIG.weight_momentum,
                                weight_decay=CONFIG.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    n, b = len(train[0]), CONFIG.batch_size
    batches = [index for _ in range(CONFIG.steps) for index in torch.randperm(n, generator=generator).split(b)
               if len(index) == b][:CONFIG.steps]
    losses = []
    for index in batches:
        loss = F.cross_entropy(network(train[0][index]), train[1][index])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), CONFIG.grad_clip)
        optimizer.step()
        losses.append(loss.item())
    return -float(np.mean(losses))


def test_values_are_minus_each_candidates_mean_training_loss(three_classes):
    train, held_out = three_classes
    candidates = [DARTS_V2, DARTS_POOL]
    result = run_alone_tournament(get_space("darts"), candidates, train, held_out, CONFIG, seed=3)
    expected = [hand_training_speed(g, train, 3) for g in candidates]
    assert result.alphas == pytest.approx(expected, rel=1e-5)
    assert result.winner == int(np.argmax(expected))
    assert sum(result.weights) == pytest.approx(1.0)
    assert math.log(result.weights[0] / result.weights[1]) == pytest.approx(expected[0] - expected[1], abs=1e-6)


def test_a_dead_candidate_is_disqualified_and_the_result_is_reproducible(three_classes):
    train, held_out = three_classes
    space = get_space("darts")
    first = run_alone_tournament(space, [DARTS_NONE, DARTS_POOL, DARTS_V2], train, held_out, CONFIG, seed=0)
    assert math.isnan(first.alphas[0]) and first.weights[0] == 0.0 and first.winner != 0
    second = run_alone_tournament(space, [DARTS_NONE, DARTS_POOL, DARTS_V2], train, held_out, CONFIG, seed=0)
    assert second.alphas[1:] == first.alphas[1:]


def test_the_values_are_the_same_at_any_thread_count_and_the_count_is_restored(three_classes):
    # The candidates train on one thread whatever the caller's count, so the float sums, and the pick, cannot
    # depend on it; the caller's count comes back afterwards.
    train, held_out = three_classes
    before = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results[threads] = run_alone_tournament(get_space("darts"), [DARTS_V2, DARTS_POOL], train, held_out,
                                                    CONFIG, seed=1).alphas
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    assert results[1] == results[2]


def test_held_out_checkpoints_do_not_change_the_training(three_classes):
    train, held_out = three_classes
    space = get_space("darts")
    runs = [train_alone(space.tournament_network(DARTS_V2, C=4, cells_per_stage=1, num_classes=3, seed=1), train,
                        held_out, CONFIG, 1, checkpoints=marks, held_out_images=images)
            for marks, images in (((), 0), ((1, 2), 16))]
    assert runs[0][0] == runs[1][0]  # the same training losses, bit for bit
    assert runs[0][1] == {} and sorted(runs[1][1]) == [1, 2, 4]


def test_the_darts_search_tournament_picks_the_sensible_cell():
    """The DARTS space's own tournament (training speed, its steps, width and batch) on real images of 3 classes."""
    arrays = subset(load_cifar10(None), 300, 0, classes=["airplane", "automobile", "bird"], relabel=True)
    train, held_out = (to_tensor(arrays.take(part)) for part in train_val_split(arrays, 0.5, 0))
    config = SearchConfig(space="darts").tournament_config()
    assert config.judge == "training_speed"
    result = run_alone_tournament(get_space("darts"), [DARTS_POOL, DARTS_NONE, DARTS_V2], train, held_out, config, 0)
    assert result.winner == 2 and math.isnan(result.alphas[1])
    assert result.train_loss < math.log(3)  # it trained: cross-entropy on 3 classes starts at ln 3


def test_space_defaults_and_runs_saved_before_the_judge_existed():
    darts, nb201 = SearchConfig(space="darts"), SearchConfig(space="nb201")
    assert (darts.tournament_judge, darts.tournament_steps, darts.tournament_prior, darts.tournament_tie_band) == (
        "training_speed", 12, 0.5, 0.02)
    assert (nb201.tournament_judge, nb201.tournament_prior, nb201.tournament_tie_band) == ("alpha", 2.0, 0.0)
    saved = run_config_dict(darts)
    assert config_from_dict(saved) == darts
    for key in ("tournament_judge", "tournament_tie_band"):
        del saved["search"][key]  # a run directory from before: it resumes with the supernet, no band
    old = config_from_dict(saved)
    assert (old.tournament_judge, old.tournament_tie_band) == ("alpha", 0.0)
