"""A tournament candidate trained on its own: the same batches and schedule as the supernet's weights, no mixture.

The DARTS supernet (tournament.py) shares only the stem and the classifier between its candidates; every
candidate already trains its own cells. What the mixture adds is the competition through softmax(alpha),
and that is where DARTS's known biases live: the alphas favour what learns fastest in the first steps, not
what ends best (Zela et al., ICLR 2020; Chu et al., "Fair DARTS", ECCV 2020), and alpha's magnitude need not
say how much a candidate contributes (Wang et al., "Rethinking Architecture Selection in Differentiable NAS",
ICLR 2021). Training each candidate alone removes that coupling at the same cost per candidate-step: the
candidate is judged by its own held-out loss (the one-shot models' own-path validation; Bender et al., ICML
2018) after the same number of steps on the same stream of training batches, which every candidate of a
tournament shares.

    losses, held_out = train_alone(network, train, held_out, config, seed, checkpoints=(6, 12, 24))
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fne.errors import ConfigError
from fne.genotopheno.search_space import SearchSpace
from fne.threads import one_thread
from fne.training.tournament import TournamentConfig, TournamentResult, _batches, is_dead


def held_out_loss(network: nn.Module, held_out: tuple[torch.Tensor, torch.Tensor], images: int,
                  device: torch.device) -> float:
    """Mean cross-entropy on the first `images` held-out images, BatchNorm on their own statistics (as DARTS)."""
    x, y = held_out[0][:images].to(device), held_out[1][:images].to(device)
    # Train-mode BatchNorm: running statistics of a few tens of steps are still mostly their initial values.
    network.train()
    with torch.no_grad():
        return float(F.cross_entropy(network(x), y))


def train_alone(network: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                held_out: tuple[torch.Tensor, torch.Tensor], config: TournamentConfig, seed: int,
                device: torch.device | str = "cpu", checkpoints: Sequence[int] = (),
                held_out_images: int = 128) -> tuple[list[float], dict[int, float]]:
    """Train with the tournament's weight settings for config.steps steps; (training losses, held-out loss by step).

    The batch order depends on `seed` alone, so every candidate of a tournament sees the same batches; the
    held-out loss is measured after config.steps and after each step in `checkpoints` (up to config.steps).
    """
    device = torch.device(device)
    network.to(device).train()
    optimizer = torch.optim.SGD(network.parameters(), lr=config.weight_lr, momentum=config.weight_momentum,
                                weight_decay=config.weight_decay)
    batches = _batches(len(train[0]), config.batch_size, torch.Generator().manual_seed(seed))
    marks = {int(step) for step in checkpoints if 0 < step <= config.steps} | {config.steps}
    if held_out_images < 1:  # training speed alone: no held-out measurement
        marks = set()
    losses: list[float] = []
    measured: dict[int, float] = {}
    for step in range(1, config.steps + 1):
        index = next(batches)
        loss = F.cross_entropy(network(train[0][index].to(device)), train[1][index].to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(float(loss.detach()))
        if step in marks:
            measured[step] = held_out_loss(network, held_out, held_out_images, device)
    return losses, measured


def run_alone_tournament(space: SearchSpace, candidates: list[str], train: tuple[torch.Tensor, torch.Tensor],
                         held_out: tuple[torch.Tensor, torch.Tensor], config: TournamentConfig, seed: int,
                         device: torch.device | str = "cpu") -> TournamentResult:
    """Train every live candidate alone (same seed, same batches); the fastest to train (lowest mean loss) wins.

    The result's `alphas` are the decisive values, minus each candidate's mean training loss over its steps
    (its training speed, TSE; Ru et al., NeurIPS 2021), NaN for a disqualified one; `weights` their softmax.
    """
    start = time.perf_counter()
    device = torch.device(device)
    if len(candidates) < 2:
        raise ConfigError(f"a tournament needs at least 2 candidates, got {len(candidates)}")
    num_classes = int(max(train[1].max(), held_out[1].max()).item()) + 1
    probe = held_out[0][: min(len(held_out[0]), 8)]
    values = np.full(len(candidates), np.nan)
    final_losses = []
    for index, text in enumerate(candidates):
        network = space.tournament_network(text, C=config.C, cells_per_stage=config.cells_per_stage,
                                           num_classes=num_classes, seed=seed)
        if is_dead(network, probe):
            continue
        # One thread: at C=4 and batch 16 a second thread doubles the CPU (19.1 against 9.8 CPU-s per
        # tournament at load 3) and reorders the float sums, moving TSE by up to 0.012 of the 0.02 tie band.
        with torch.random.fork_rng(devices=[]), one_thread():
            torch.manual_seed(seed)  # anything stochastic inside the ops stays reproducible
            losses, _ = train_alone(network, train, held_out, config, seed, device, checkpoints=(),
                                    held_out_images=0)
        values[index] = -float(np.mean(losses))
        final_losses.append(losses[-1])
    live = np.flatnonzero(np.isfinite(values))
    weights = np.zeros(len(candidates))
    if len(live):
        shifted = np.exp(values[live] - values[live].max())
        weights[live] = shifted / shifted.sum()
    return TournamentResult(
        candidates=tuple(candidates), alphas=tuple(float(v) for v in values), weights=tuple(float(w) for w in weights),
        winner=int(live[np.argmax(values[live])]) if len(live) else 0,
        train_loss=float(np.mean(final_losses)) if final_losses else float("nan"), val_loss=float("nan"),
        seconds=time.perf_counter() - start)
