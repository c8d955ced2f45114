"""The scoring path launches little (issue 23): ATen calls and host transfers of one architecture's default
scoring, end to end, against one forward+backward; and the pieces that make it so, each against an oracle
(FLOPs from the forward vs FlopCounterMode, one flat move vs Module.to, batched sign codes vs numpy,
one draw of random signals vs one draw per block, scoring builds vs training builds)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fne.device import move_module
from fne.evolution.budget import BudgetCheck, SizeBudget
from fne.genotopheno.batch_norm import without_running_stats
from fne.genotopheno.genotype import published
from fne.genotopheno.network import count_flops, count_parameters
from fne.genotopheno.spaces import get_space
from fne.launch_count import count_launches
from fne.run.config import SearchConfig
from fne.scoring import jacobians
from fne.scoring.fitness import FitnessConfig, resolve_pending, score_genotypes, score_network
from fne.scoring.heuristics import PendingScore, probe_network
from fne.scoring.jacobians import HammingKernel, pack_bits
from fne.scoring.networks import BuildAhead, build_lean
from fne.scoring.probe_features import rademacher_like
from tests.scoring.nets import DARTS_ARCH, NB201_ARCH, tiny_net

# Issue 23's targets: at most this many ATen calls per forward+backward's, and host transfers.
CALL_RATIO_TARGET = {"nb201": 5.0, "darts": 3.0}
TRANSFER_TARGET = 40
CELLS = {"nb201": "C+Cc+kCC", "darts": str(published("DARTS_V2"))}  # DARTS_V2 at the search's 16.32.64|1.1.1


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> None:
    model.train()
    model(x).sum().backward()


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_default_scoring_launches_within_the_target(space_name, labelled_64):
    """As benchmarks/bench_launches.py counts it: the search's budget check and scoring, the space's defaults."""
    x, y = labelled_64
    space, config = get_space(space_name), SearchConfig(space=space_name)
    cell = space.canonical(CELLS[space_name])
    fitness = config.fitness_config()
    budget = SizeBudget(config.max_params, config.max_flops)

    def search_step() -> None:
        if budget.active:
            BudgetCheck(space, budget).fits(cell)
        score_genotypes(space, [cell], x, fitness, labels=y)

    search_step()  # warm-up
    model = space.build(cell, seed=0)
    unit = count_launches(lambda: fwd_bwd(model, x))
    counted = count_launches(search_step)
    assert counted.aten_calls <= CALL_RATIO_TARGET[space_name] * unit.aten_calls, counted.aten_by_name.most_common(10)
    assert counted.host_transfers <= TRANSFER_TARGET, counted.transfers_by_method


@pytest.fixture(scope="module")
def labelled_64() -> tuple[torch.Tensor, torch.Tensor]:
    from fne.data.cifar10 import heuristic_labelled_batch

    return heuristic_labelled_batch(None, 64, seed=0)


@pytest.mark.parametrize("space_name,seed", [("nb201", 0), ("nb201", 1), ("darts", 0), ("darts", 1), ("darts", 2)])
def test_flops_counted_in_the_probe_forward_equal_flop_counter_mode(space_name, seed, labelled):
    space = get_space(space_name)
    genotype = space.sample(np.random.default_rng(seed))
    options = {"C": 4, "layers": 1} if space_name == "nb201" else {"C": 4}
    model = space.build(genotype, seed=0, **options)
    probe = probe_network(model, labelled[0], {"block_features"})
    assert probe.features.flops == count_flops(model, (1, *labelled[0].shape[1:]))


def test_flops_of_a_foreign_module_are_counted_by_flop_counter_mode(labelled):
    class Doubling(torch.nn.Module):  # arithmetic the hooks cannot see: the probe declines to count
        def forward(self, x):
            return x @ torch.ones(x.shape[-1], x.shape[-1])

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), Doubling())
    assert probe_network(model, labelled[0], {"block_features"}).features.flops is None


def test_one_flat_move_equals_module_to():
    model = tiny_net("darts", DARTS_ARCH, dtype=torch.float32)
    expected = {name: t.to(torch.float64) if t.is_floating_point() else t for name, t in model.state_dict().items()}
    moved = move_module(model, torch.device("cpu"), torch.float64)
    for name, tensor in moved.state_dict().items():
        assert tensor.dtype == expected[name].dtype and torch.equal(tensor, expected[name]), name
    assert count_launches(lambda: move_module(moved, torch.device("cpu"), torch.float64)).aten_calls == 0


@pytest.mark.parametrize("space_name,arch", [("nb201", NB201_ARCH), ("darts", DARTS_ARCH)])
def test_scoring_builds_have_the_training_builds_parameters_and_scores(space_name, arch, labelled):
    space = get_space(space_name)
    options = {"C": 4, "layers": 1} if space_name == "nb201" else {"C": 4}
    full = space.build(arch, seed=3, **options)
    with without_running_stats():
        lean = space.build(arch, seed=3, **options)
    assert not list(lean.buffers()) and count_parameters(lean) == count_parameters(full)
    for (name, a), (_, b) in zip(full.named_parameters(), lean.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    config = FitnessConfig(batch_size=8, device="cpu", heuristics=("az_expressivity", "meco", "zico", "ntk"))
    x, y = labelled
    assert score_network(full, x, config, labels=y) == score_network(lean, x, config, labels=y)


def test_bits_packed_as_numpy_packs_them():
    codes = torch.rand(5, 21, generator=torch.Generator().manual_seed(0)) > 0.5
    assert np.array_equal(pack_bits(codes).numpy(), np.packbits(codes.numpy(), axis=1))


def test_hamming_kernel_by_popcount_equals_the_matmul_path(monkeypatch):
    x = torch.randn(6, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    kernels = []
    for popcount in (True, False):
        monkeypatch.setattr(jacobians, "HAS_POPCOUNT", popcount)
        hamming = HammingKernel(6, "cpu")
        hamming.add(x)
        hamming.add_codes(x[:, :1].reshape(6, -1) < 0.3)
        kernels.append(hamming.kernel)
    codes = torch.cat([(x > 0).reshape(6, -1), (x[:, :1].reshape(6, -1) < 0.3)], 1).double()
    expected = codes @ codes.T + (1 - codes) @ (1 - codes).T  # units on which two samples agree
    assert torch.equal(kernels[0], expected) and torch.equal(kernels[1], expected)


def test_one_draw_of_signals_equals_one_draw_per_block():
    shapes = [torch.Size((2, 3, 4, 4)), torch.Size((2, 5, 2, 2)), torch.Size((2, 3, 1, 1))]
    signals = rademacher_like(shapes, torch.Generator().manual_seed(7), torch.device("cpu"), torch.float32)
    generator = torch.Generator().manual_seed(7)
    for shape, signal in zip(shapes, signals, strict=True):
        expected = (torch.rand(shape, generator=generator) < 0.5).float() * 2 - 1
        assert torch.equal(signal, expected)


def test_pending_scores_come_back_in_one_transfer_with_their_reasons():
    pending = {"a": PendingScore(torch.tensor(2.5, dtype=torch.float64)),
               "b": PendingScore(torch.tensor(1.0), ((torch.tensor(False), "first"), (torch.tensor(True), "second"))),
               "c": PendingScore(torch.tensor(math.nan)),
               "d": PendingScore(torch.tensor(-1.0), ((torch.tensor(False), "never"),))}
    outcome = {}
    counted = count_launches(lambda: outcome.update(resolve_pending(pending)))
    assert outcome == {"a": 2.5, "b": "second", "c": "returned nan", "d": -1.0}
    assert counted.host_transfers == 1


def test_networks_built_ahead_in_a_thread_are_the_networks_built_in_line():
    space = get_space("darts")
    genotypes = [space.sample(np.random.default_rng(seed)) for seed in range(3)]
    ahead = BuildAhead(space, 4, None, 10, torch.device("cpu"), torch.float32, ahead=True)
    try:
        for genotype in genotypes:
            ahead.prepare(genotype, 11)
        built = [ahead.network(genotype, 11) for genotype in reversed(genotypes)]
    finally:
        ahead.close()
    for genotype, model in zip(reversed(genotypes), built, strict=True):
        expected = build_lean(space, genotype, C=4, layers=None, num_classes=10, seed=11)
        for (name, a), (_, b) in zip(expected.named_parameters(), model.named_parameters(), strict=True):
            assert torch.equal(a, b), name
