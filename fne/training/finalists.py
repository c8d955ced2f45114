"""The finalists' stage: a short training of the aggregate's best few, kept by training speed.

The training-free scores rank the space well as a whole (Spearman 0.94 on NB201) but saturate at its top:
every expressivity score and FLOPs prefer one more convolution, so among the best few percent they pick
conv-dense cells over the residual cells that train best (report/heuristics/README.md). Trainability is
what separates those, and a short training measures it directly. This stage trains the `top` best
candidates by the aggregate, from the same initial seed on the same stream of augmented images, and
keeps them by their training-speed estimate (TSE; Ru et al., "Speedy Performance Estimation for Neural
Architecture Search", NeurIPS 2021): the mean training loss over the steps so far, lower = better. It
halves the field at each rung (successive halving; Jamieson & Talwalkar, AISTATS 2016), so most of the
steps go to the few candidates still in contention.

The last rung's survivors all train fast, and there early training has its known bias: among networks
that train well, the smaller one (one convolution fewer) leads the first hundred steps and ends lower.
So the final decision adds back the capacity signal that the training-free aggregate measures: the pick
is the smallest AZ-NAS log-rank aggregate of (TSE, rank_combined) over the survivors (`decide`).

A decision should not depend on the machine. Training at this learning rate is chaotic: a rounding
difference grows about tenfold per step. In float32 the same cell's TSE then differs by up to 2e-2
relative between thread counts (and so between CPUs), as much as the gaps successive halving ranks by,
and the DARTS default's last two finalists swap places. The finalists therefore train in float64, whose
rounding starts nine orders of magnitude lower: the TSEs measured at 1, 2 and 4 threads differ by under
1e-14 relative for four of five cells, but a chaotic one still reached 4.0e-4 by step 50 (docs/search.md,
"Same pick on any machine"). TSEs closer than `tse_band` (1e-3 relative, 2.5x that) are a tie, which the
aggregate's order breaks (`tie_groups`).

    table = successive_halving(space, ["C+CC+kCC", "C+CC+cCC", ...], images, labels, FinalistConfig())
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from fne.errors import ConfigError
from fne.genotopheno.search_space import SearchSpace
from fne.memory import release_freed_memory
from fne.scoring.aggregation import az_nas_log_rank
from fne.training.recipe import Stats, augment_batch

FINALIST_DTYPES = ("float64", "float32")
# The float64 TSE's largest measured spread over 1, 2 and 4 threads is 4.0e-4 relative (docs/search.md).
TSE_BAND = 1e-3


@dataclass(frozen=True)
class FinalistConfig:
    """How the finalists train: narrow copies of the networks, SGD at a constant rate after a warm-up."""

    top: int = 64  # candidates (best by the aggregate) that start; 0 turns the stage off
    rungs: tuple[int, ...] = (12, 25, 50, 100)  # cumulative steps after which the worse half stops
    C: int | None = 8  # width override: the ranking, not the accuracy, is what matters (None: the space's)
    batch_size: int = 64
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_steps: int = 10  # linear warm-up; then constant, so a run can be continued rung by rung
    seed: int = 0
    # float64: a TSE that float rounding moves ~1e3-1e13x less than float32's (module docstring); 2-3.4x the CPU.
    dtype: str = "float64"
    tse_band: float = TSE_BAND  # relative TSE difference within which two finalists tie

    def __post_init__(self) -> None:
        object.__setattr__(self, "rungs", tuple(int(r) for r in self.rungs))
        if self.top < 0:
            raise ConfigError(f"finalists top={self.top} must be 0 (off) or positive")
        if not self.rungs or any(r < 1 for r in self.rungs) or list(self.rungs) != sorted(set(self.rungs)):
            raise ConfigError(f"finalist rungs {self.rungs} must be increasing positive step counts")
        if self.batch_size < 1 or self.lr <= 0 or self.warmup_steps < 0:
            raise ConfigError("finalist batch_size, lr and warmup_steps must be positive (warm-up may be 0)")
        if self.dtype not in FINALIST_DTYPES or not 0 <= self.tse_band < 1:
            raise ConfigError(f"finalist dtype={self.dtype!r} must be one of {', '.join(FINALIST_DTYPES)} and "
                              f"tse_band={self.tse_band} in [0, 1)")

    def steps(self) -> int:
        """Total training steps of the stage when it starts `top` candidates (the unit of its cost)."""
        alive, done, total = self.top, 0, 0
        for rung in self.rungs:
            if alive == 1 and done:  # as successive_halving: a decided field trains no further
                break
            total += alive * (rung - done)
            done, alive = rung, math.ceil(alive / 2)
        return total


class _Run:
    """One finalist's network, optimiser and training losses, continued rung by rung."""

    def __init__(self, model: nn.Module, config: FinalistConfig):
        self.model = model.to(dtype=getattr(torch, config.dtype)).train()  # float32 weights convert exactly
        self.optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                         nesterov=True, weight_decay=config.weight_decay)
        self.config = config
        self.losses: list[float] = []

    def advance(self, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]], until: int,
                on_step: Callable[[], None] | None = None) -> None:
        """Train up to step `until` on the shared stream; a non-finite loss makes every later loss inf."""
        for step in range(len(self.losses), until):
            self._step(batches, step)
            if on_step is not None:
                on_step()

    def _step(self, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]], step: int) -> None:
        """One training step (step numbers count from 0 on the shared stream)."""
        if self.losses and not math.isfinite(self.losses[-1]):
            self.losses.append(math.inf)
            return
        warm = self.config.warmup_steps
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * min(1.0, (step + 1) / warm) if warm else self.config.lr
        x, y = batches(step)
        output = self.model(x)
        logits = output[0] if isinstance(output, tuple) else output  # DARTS nets add an auxiliary head
        loss = F.cross_entropy(logits, y)
        if not torch.isfinite(loss):
            self.losses.append(math.inf)
            return
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.losses.append(float(loss.detach()))

    def tse(self) -> float:
        """Training-speed estimate: the mean training loss over every step so far (lower = trains faster)."""
        return float(np.mean(self.losses)) if self.losses else math.inf


def shortlist(genotypes: Sequence[str], scores: Sequence[float], top: int) -> list[int]:
    """Indices of the `top` best distinct genotypes by ascending score (ties: the earlier), non-finite last."""
    if top < 1:
        return []
    values = np.asarray(scores, dtype=float)
    keyed = np.where(np.isfinite(values), values, np.inf)
    chosen: list[int] = []
    seen: set[str] = set()
    for index in np.argsort(keyed, kind="stable"):
        if genotypes[index] not in seen:
            seen.add(genotypes[index])
            chosen.append(int(index))
        if len(chosen) == top:
            break
    return chosen


def tie_groups(tse: Sequence[float], band: float = TSE_BAND) -> np.ndarray:
    """Each TSE's rank with ties: sorted TSEs within `band` (relative) of their neighbour share one (0 = lowest).

    Non-finite TSEs (a diverged finalist) share the last group. Neighbours chain (single linkage), so a group may
    span more than the band, but two TSEs closer than the band always share a group, whichever is lower.
    """
    values = np.asarray(tse, dtype=float)
    groups = np.zeros(len(values), dtype=int)
    order = np.argsort(np.where(np.isfinite(values), values, np.inf), kind="stable")
    group, previous = 0, None
    for index in order:
        value = values[index]
        if previous is not None and not _within(previous, value, band):
            group += 1
        groups[index], previous = group, value
    return groups


def _within(a: float, b: float, band: float) -> bool:
    """Whether two TSEs tie: both non-finite, or closer than `band` relative to the larger."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return not (math.isfinite(a) or math.isfinite(b))
    return abs(a - b) <= band * max(abs(a), abs(b))


def survivors(tse: Sequence[float], keep: int, band: float = TSE_BAND) -> list[int]:
    """Positions of the `keep` lowest TSEs; TSEs within the band tie and the earlier position (the aggregate's) wins."""
    groups = tie_groups(tse, band)
    return sorted(range(len(groups)), key=lambda i: (groups[i], i))[:keep]


def decide(tse: Sequence[float], prior: Sequence[float] | None = None, band: float = TSE_BAND) -> int:
    """Index of the winner among the last survivors: smallest TSE, or with a prior (rank_combined) log-rank sum.

    TSEs within the band rank equal (`tie_groups`); exact ties of the result keep the earlier index.
    """
    groups = tie_groups(tse, band).astype(float)
    keyed = groups if prior is None else az_nas_log_rank(np.column_stack([groups, np.asarray(prior, dtype=float)]))
    keyed = np.where(np.isnan(keyed), np.inf, keyed)
    return int(np.argsort(keyed, kind="stable")[0])


def stream_positions(n: int, config: FinalistConfig) -> np.ndarray:
    """The training positions the stream over n images reads in rungs[-1] steps, in the order it reads them."""
    if n < config.batch_size:
        raise ConfigError(f"finalists need at least batch_size={config.batch_size} images, got {n}")
    order = np.random.default_rng(config.seed).permutation(n)
    return order[:min(config.rungs[-1], n // config.batch_size) * config.batch_size]


def batch_stream(images: torch.Tensor, labels: torch.Tensor, config: FinalistConfig, stats: Stats | None = None,
                 ordered: bool = False) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """step -> (x, y): a seeded pass over the uint8 NHWC images, cropped and flipped, the same for everyone.

    `ordered`: the images are already `stream_positions` of a larger set, in that order; the batches are then
    those of the stream over the whole set (a large folder need not be read for 100 steps of 64 images).
    """
    n = len(images)
    if n < config.batch_size:
        raise ConfigError(f"finalists need at least batch_size={config.batch_size} images, got {n}")
    permutation = np.arange(n) if ordered else np.random.default_rng(config.seed).permutation(n)
    order = torch.from_numpy(permutation).to(images.device)
    per_epoch = n // config.batch_size

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = (step % per_epoch) * config.batch_size
        index = order[start:start + config.batch_size]
        generator = torch.Generator(device=images.device).manual_seed(config.seed * 1_000_003 + step)
        x = augment_batch(images[index], generator, cutout=0, stats=stats)  # elementwise: the same on any CPU
        return x.to(getattr(torch, config.dtype)), labels[index]

    return batch


def successive_halving(space: SearchSpace, genotypes: Sequence[str], images: torch.Tensor, labels: torch.Tensor,
                       config: FinalistConfig, device: torch.device | str = "cpu",
                       on_rung: Callable[[int, int], None] | None = None,
                       prior: Sequence[float] | None = None, stats: Stats | None = None,
                       num_classes: int = 10, on_step: Callable[[], None] | None = None,
                       ordered: bool = False) -> pd.DataFrame:
    """Train the genotypes (best first) rung by rung, halving by TSE; one row each, `winner` flags the pick.

    images are uint8 NHWC training images and labels their int64 classes, on `device` (with `ordered`, only the
    `stream_positions` of the training set, in that order). Ties (TSEs within config.tse_band, and inf
    losses) keep the earlier genotype, so the aggregate's order breaks them. `prior` (each genotype's
    rank_combined) joins the TSE in the final decision among the last rung's survivors (`decide`). `on_step`
    is called after every training step, `on_rung(rung number, finalists that trained it)` after each rung.
    """
    if not genotypes:
        raise ConfigError("successive halving needs at least one genotype")
    batches = batch_stream(images, labels, config, stats, ordered)
    runs = []
    for genotype in genotypes:
        model = space.build(genotype, C=config.C, num_classes=num_classes, seed=config.seed).to(device)
        runs.append(_Run(model, config))
    alive = list(range(len(runs)))
    stopped_at = [0] * len(runs)
    for number, rung in enumerate(config.rungs):
        if len(alive) == 1:  # the field is decided: training the winner on alone would change nothing
            break
        for index in alive:
            runs[index].advance(batches, rung, on_step)
            stopped_at[index] = rung
            release_freed_memory()  # else the freed activations of each network pile up (fne/memory.py)
        if on_rung is not None:
            on_rung(number, len(alive))
        alive = sorted(alive)  # in the aggregate's order, so that it breaks ties
        tse = [runs[i].tse() for i in alive]
        if number < len(config.rungs) - 1:
            alive = [alive[i] for i in survivors(tse, math.ceil(len(alive) / 2), config.tse_band)]
        else:
            last_prior = None if prior is None else [prior[i] for i in alive]
            alive = [alive[decide(tse, last_prior, config.tse_band)]]
    return pd.DataFrame({
        "genotype": list(genotypes),
        "order": np.arange(len(runs)),
        "steps": stopped_at,
        "tse": [run.tse() for run in runs],
        "final_loss": [run.losses[-1] if run.losses else math.inf for run in runs],
        "winner": [i == alive[0] for i in range(len(runs))],
    })
