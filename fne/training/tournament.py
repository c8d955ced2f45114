"""DARTS tournament: k candidate cells mixed by softmax(alpha) in one supernet, trained briefly; max alpha wins.

This is the `alpha` judge (NB201's); the DARTS space judges by each candidate's training speed alone
(fne/training/alone.py), because on NB301 cells the alphas ranked a group no better than chance.

The supernet (the same idea as DARTS's MixedOp, lifted from ops to whole cells; Liu et al., ICLR 2019):

- Every candidate is built on one common skeleton by its space (`SearchSpace.tournament_network`): DARTS
  space at `C` channels in the first stage (C, 2C, 4C, ...) and `cells_per_stage` normal cells per stage;
  NB201 space as its TinyNetwork with width `C` and `N` cells per stage. The space's `tournament_layout`
  names the supernet that mixes them (`SUPERNETS`: "darts" two-input cells, "chain" one-input cells).
  Only the candidates' *cells* differ, so the tournament judges cell topology and ops alone; widths and
  cell counts of DARTS genotypes do not take part (the heuristics and the parameter count judge those).
- The stem, the fixed NB201 ResNet reduction blocks, the final pooling and the classifier are shared (the
  first candidate's modules). At every cell position the output is sum_i softmax(alpha)_i * cell_i(inputs),
  where cell_i is candidate i's own cell (own weights) at that position. One alpha vector of length k is
  shared by all positions, as DARTS shares one alpha per edge over all normal cells, because a candidate is
  one indivisible individual.
- First-order DARTS: each step updates alpha (Adam) on a batch of the held-out split, then the weights
  (SGD with momentum) on a batch of the training split; alpha stays frozen for the first `warmup_steps`
  so that no candidate wins merely because its untrained weights start out less useless.
- A candidate whose network ignores its input (every path cut by `none`, e.g. an all-none cell) is
  disqualified before the supernet is built: it can learn nothing, and in a softmax mixture its only effect
  is to shrink the others' outputs, which the held-out loss can reward for reasons unrelated to the
  architecture (DARTS's known `none` pathology; DARTS drops `none` when it derives a cell for the same
  reason). Its alpha is reported as NaN.
- The winner is argmax(alpha) over the live candidates (the lowest index on an exact tie).

Measured (experiments/results/tournament_quality.md; 20 random NB201 groups of 4, TournamentConfig's
defaults, which the NB201 search uses): the winner averages 90.0% true accuracy against a group mean of
87.7%, but is the group's best only 30% of the time (random: 25%). A tournament of a few tens of steps is
a weak signal; it complements the heuristics with real training rather than replacing them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fne.errors import ConfigError
from fne.genotopheno.network import Network
from fne.genotopheno.spaces import SearchSpace
from fne.registry import Registry

# What decides a tournament: the supernet's alpha (here), or each candidate's training speed when trained
# alone on the same batches (fne.training.alone).
TOURNAMENT_JUDGES = ("alpha", "training_speed")
# Supernet classes by the layout a space names in `SearchSpace.tournament_layout`.
SUPERNETS: Registry[type[nn.Module]] = Registry("tournament supernet layout")


@dataclass(frozen=True)
class TournamentConfig:
    """Supernet skeleton and the short first-order DARTS schedule of one tournament."""

    size: int = 4  # k candidates per tournament
    steps: int = 30  # weight updates (alpha updates: steps - warmup_steps)
    warmup_steps: int = 10
    batch_size: int = 32
    C: int = 8
    cells_per_stage: int = 1  # DARTS: normal cells per stage; NB201: N
    weight_lr: float = 0.025  # DARTS's SGD settings
    weight_momentum: float = 0.9
    weight_decay: float = 3e-4
    alpha_lr: float = 0.05  # far above DARTS's 3e-4: a tournament has tens of steps, not 50 epochs
    alpha_weight_decay: float = 1e-3
    grad_clip: float = 5.0
    # BatchNorm after each mixture (removes its scale as a knob). Measured worse on 20 random NB201 groups of 4
    # (winner's mean true-accuracy rank 2.70 vs 2.10 without; random 2.50): experiments/tournament_quality.py.
    normalise_mixture: bool = False
    judge: str = "alpha"  # one of TOURNAMENT_JUDGES; training_speed trains each candidate alone for `steps`

    def __post_init__(self) -> None:
        if self.judge not in TOURNAMENT_JUDGES:
            raise ConfigError(f"tournament judge {self.judge!r} is not one of {', '.join(TOURNAMENT_JUDGES)}")
        if self.size < 2:
            raise ConfigError(f"tournament size {self.size} must be at least 2")
        if self.steps < 1 or not 0 <= self.warmup_steps < self.steps:
            raise ConfigError(f"tournament steps={self.steps} must be >= 1 and warmup_steps={self.warmup_steps} "
                              "must be in 0..steps-1")
        if self.batch_size < 1 or self.C < 1 or self.cells_per_stage < 1:
            raise ConfigError(f"tournament batch_size={self.batch_size}, C={self.C} and "
                              f"cells_per_stage={self.cells_per_stage} must be positive")


@dataclass(frozen=True)
class TournamentResult:
    """One tournament: the candidates, their final alphas and softmax weights, the winner and the losses."""

    candidates: tuple[str, ...]
    alphas: tuple[float, ...]
    weights: tuple[float, ...]
    winner: int  # index into candidates
    train_loss: float  # mean over the last quarter of the steps
    val_loss: float
    seconds: float


class CellMixture(nn.Module):
    """The softmax(alpha)-weighted sum of the k candidates' cells at one position (DARTS MixedOp, per cell)."""

    def __init__(self, cells: list[nn.Module], normalise: bool = False):
        super().__init__()
        self.cells = nn.ModuleList(cells)
        # Optional affine-free BatchNorm of the mixture: removes its overall scale as a free knob.
        self.norm = nn.LazyBatchNorm2d(affine=False) if normalise else nn.Identity()

    def forward(self, inputs: tuple[torch.Tensor, ...], weights: torch.Tensor) -> torch.Tensor:
        return self.norm(sum(w * cell(*inputs) for w, cell in zip(weights, self.cells, strict=True)))


@SUPERNETS.register("darts")
class DartsSupernet(nn.Module):
    """Shared stem and classifier; at each cell position the mixture of the k DARTS candidates' cells."""

    def __init__(self, networks: list[Network], normalise: bool = False):
        super().__init__()
        self.stem = networks[0].stem
        self.global_pooling = networks[0].global_pooling
        self.classifier = networks[0].classifier
        self.mixtures = nn.ModuleList(CellMixture([net.cells[position] for net in networks], normalise)
                                      for position in range(len(networks[0].cells)))
        self.alpha = nn.Parameter(torch.zeros(len(networks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.alpha, dim=0)
        s0 = s1 = self.stem(x)
        for mixture in self.mixtures:
            s0, s1 = s1, mixture((s0, s1), weights)
        return self.classifier(self.global_pooling(s1).flatten(1))


@SUPERNETS.register("chain")
class ChainSupernet(nn.Module):
    """One-input cells in a chain (NB201's TinyNetwork): shared stem, fixed blocks and head; cells mixed.

    A chain network has `stem`, `cells` applied in order, `lastact`, `global_pooling`, `classifier`, and
    `searched_cells`, the positions in `cells` that hold the genotype's cells (the others are fixed blocks).
    """

    def __init__(self, networks: list[nn.Module], normalise: bool = False):
        super().__init__()
        first = networks[0]
        self.stem = first.stem
        self.lastact = first.lastact
        self.global_pooling = first.global_pooling
        self.classifier = first.classifier
        mixed = set(first.searched_cells)
        self.blocks = nn.ModuleList(
            CellMixture([net.cells[position] for net in networks], normalise) if position in mixed else module
            for position, module in enumerate(first.cells))
        self.alpha = nn.Parameter(torch.zeros(len(networks)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = F.softmax(self.alpha, dim=0)
        feature = self.stem(x)
        for block in self.blocks:
            feature = block((feature,), weights) if isinstance(block, CellMixture) else block(feature)
        return self.classifier(self.global_pooling(self.lastact(feature)).flatten(1))


def candidate_networks(space: SearchSpace, candidates: list[str], config: TournamentConfig, num_classes: int,
                       seed: int) -> list[nn.Module]:
    """Every candidate's own network on the common tournament skeleton (candidate i initialised with seed + i)."""
    if space.tournament_layout is None:
        raise ConfigError(f"no tournament supernet is defined for search space {space.name!r}")
    return [space.tournament_network(text, C=config.C, cells_per_stage=config.cells_per_stage,
                                     num_classes=num_classes, seed=seed + index)
            for index, text in enumerate(candidates)]


def build_supernet(networks: list[nn.Module], layout: str, normalise: bool = False) -> nn.Module:
    """The tournament supernet of `layout` (a space's `tournament_layout`) mixing these networks' cells."""
    if len(networks) < 2:
        raise ConfigError(f"a supernet needs at least 2 candidates, got {len(networks)}")
    return SUPERNETS[layout](networks, normalise)


def is_dead(network: nn.Module, x: torch.Tensor) -> bool:
    """True when the network's logits do not depend on its input (every path cut by `none`)."""
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            logits = network(x)
    finally:
        network.train(was_training)
    spread = (logits - logits[:1]).abs().max()
    return bool(spread <= 1e-6 * (1.0 + logits.abs().max()))


def _batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless seeded mini-batch index tensors, reshuffled every pass."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, max(n - batch_size + 1, 1), batch_size):
            yield order[start:start + batch_size]


def train_supernet(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                   held_out: tuple[torch.Tensor, torch.Tensor], config: TournamentConfig, seed: int,
                   device: torch.device) -> tuple[float, float]:
    """First-order DARTS: alpha (Adam) on a held-out batch, then the weights (SGD) on a training batch, per step."""
    model.to(device).train()
    weights = [p for name, p in model.named_parameters() if name != "alpha"]
    weight_opt = torch.optim.SGD(weights, lr=config.weight_lr, momentum=config.weight_momentum,
                                 weight_decay=config.weight_decay)
    alpha_opt = torch.optim.Adam([model.alpha], lr=config.alpha_lr, betas=(0.5, 0.999),
                                 weight_decay=config.alpha_weight_decay)
    generator = torch.Generator().manual_seed(seed)
    train_batches = _batches(len(train[0]), config.batch_size, generator)
    val_batches = _batches(len(held_out[0]), config.batch_size, generator)
    train_losses, val_losses = [], []
    for step in range(config.steps):
        if step >= config.warmup_steps:
            index = next(val_batches)
            alpha_opt.zero_grad(set_to_none=True)
            val_loss = F.cross_entropy(model(held_out[0][index].to(device)), held_out[1][index].to(device))
            val_loss.backward()
            alpha_opt.step()
            val_losses.append(float(val_loss.detach()))
        index = next(train_batches)
        weight_opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(train[0][index].to(device)), train[1][index].to(device))
        loss.backward()
        nn.utils.clip_grad_norm_(weights, config.grad_clip)
        weight_opt.step()
        train_losses.append(float(loss.detach()))
    tail = max(1, len(train_losses) // 4)
    return float(np.mean(train_losses[-tail:])), float(np.mean(val_losses[-tail:]))


def run_tournament(space: SearchSpace, candidates: list[str], train: tuple[torch.Tensor, torch.Tensor],
                   held_out: tuple[torch.Tensor, torch.Tensor], config: TournamentConfig, seed: int,
                   device: torch.device | str = "cpu") -> TournamentResult:
    """Train one supernet over the live candidates on real batches; the largest alpha wins."""
    start = time.perf_counter()
    device = torch.device(device)
    candidates = list(candidates)
    if len(candidates) < 2:
        raise ConfigError(f"a tournament needs at least 2 candidates, got {len(candidates)}")
    num_classes = int(max(train[1].max(), held_out[1].max()).item()) + 1
    networks = candidate_networks(space, candidates, config, num_classes, seed)
    probe = held_out[0][: min(len(held_out[0]), 8)]
    live = [i for i, net in enumerate(networks) if not is_dead(net, probe)]
    alphas = np.full(len(candidates), np.nan)
    train_loss = val_loss = float("nan")
    if len(live) >= 2:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # anything stochastic inside the ops stays reproducible
            model = build_supernet([networks[i] for i in live], space.tournament_layout, config.normalise_mixture)
            train_loss, val_loss = train_supernet(model, train, held_out, config, seed, device)
        alphas[live] = model.alpha.detach().cpu().numpy().astype(float)
    elif live:
        alphas[live] = 0.0
    weights = np.zeros(len(candidates))
    if live:
        shifted = np.exp(alphas[live] - np.max(alphas[live]))
        weights[live] = shifted / shifted.sum()
    return TournamentResult(
        candidates=tuple(candidates),
        alphas=tuple(float(a) for a in alphas),
        weights=tuple(float(w) for w in weights),
        # argmax takes the first of equal maxima; all dead -> the first candidate (heuristics rank it anyway).
        winner=live[int(np.argmax(alphas[live]))] if live else 0,
        train_loss=train_loss,
        val_loss=val_loss,
        seconds=time.perf_counter() - start,
    )

