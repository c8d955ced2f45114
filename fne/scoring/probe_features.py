"""One hooked forward for the activation-based scores, and AZ-NAS's block-wise backward of random signals.

A single forward of the batch records, as it goes (and only what some requested heuristic needs):

    block_features       the C x C channel covariance of every block output (AZ-NAS expressivity/progressivity)
    block_grads          the block outputs kept with their graph, then one backward of random +-1 signals
                         block by block (AZ-NAS trainability)
    module_correlations  the C x C channel correlation of the first sample's output of every module (MeCo)
    relu_patterns        the number of distinct per-unit sign patterns over the first samples (SWAP)

and, when every module's FLOPs follow from its output shape, the FLOPs of one image. The formulas that turn
these into scores live with each score (az_nas.py, meco.py, swap.py); this module only measures.

Everything stays on the probe's device, batched: the hooks only take views and comparisons, each block's
pending maps are stacked when the block returns (forward_record.py), and the correlations, sign codes and
random signals of all modules and blocks are computed in a few large operations, so that a GPU runs a
handful of kernels per block instead of a dozen per module and nothing returns to the host until the
scores are read (fitness.score_network, one transfer). The blocks are `network_blocks(model)`: the
network's own `blocks()` (both built-in spaces define it: stem, then every cell), else its top-level
children with module lists expanded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from fne.scoring.forward_record import SWAP_SAMPLES, ForwardRecord, InPlaceModified, channel_covariance
from fne.scoring.jacobians import HammingKernel, batch_norm_mode

FEATURE_NEEDS = ("block_features", "block_grads", "module_correlations", "relu_patterns")
__all__ = ["FEATURE_NEEDS", "SWAP_SAMPLES", "FeatureProbe", "block_cross_gradients", "channel_covariance",
           "first_sample_correlation", "network_blocks", "probe_features", "rademacher_like"]


@dataclass(frozen=True)
class FeatureProbe:
    """What the hooked forward measured, on the probe's device (empty where not asked for)."""

    block_covariances: tuple[torch.Tensor, ...] = ()  # C x C per block output, in forward order
    block_cross: tuple[torch.Tensor, ...] = ()  # per consecutive block pair, last first: (C_in s^2) x C_out
    block_identity: torch.Tensor | None = None  # 0-dim bool: a block's backward returned its signal unchanged
    module_correlations: tuple[torch.Tensor, ...] = ()  # float64 (B, C, C) first-sample correlations per C
    module_counts: tuple[torch.Tensor, ...] = ()  # float64 (B,): how many hooked modules output each map
    relu_patterns: torch.Tensor | None = None  # 0-dim: distinct sign patterns over the first SWAP_SAMPLES samples
    relu_units: int = 0  # how many ReLU units were counted
    flops: int | None = None  # of one image, Conv2d and Linear, when every module's FLOPs follow from shapes
    memo: dict = field(default_factory=dict, compare=False, repr=False)  # scores' shared intermediate results


def network_blocks(model: nn.Module) -> list[nn.Module]:
    """The model's blocks in order: its `blocks()` (or `blocks` module list), else its top-level children."""
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.ModuleList | nn.Sequential | list | tuple):
        return list(blocks)
    if callable(blocks):
        return list(blocks())
    found: list[nn.Module] = []
    for child in model.children():
        # A module list is never called itself; its items are.
        found.extend(child if isinstance(child, nn.ModuleList) else [child])
    return found


def first_sample_correlation(maps: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the channels of (B, C, H, W) first-sample maps over positions: float64 (B, C, C).

    As torch.corrcoef (and MeCo's code) per map, batched; a channel that is constant (undefined correlation)
    gets a zero row and column.
    """
    with torch.no_grad():
        x = maps.reshape(maps.shape[0], maps.shape[1], -1).double()
        x = x - x.mean(-1, keepdim=True)
        covariance = x @ x.transpose(1, 2) / (x.shape[-1] - 1)
        std = covariance.diagonal(dim1=1, dim2=2).sqrt()
        correlation = covariance / std[:, :, None] / std[:, None, :]
        return correlation.clamp_(-1.0, 1.0).nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)


def rademacher_like(shapes: list[torch.Size], generator: torch.Generator, device: torch.device,
                    dtype: torch.dtype) -> list[torch.Tensor]:
    """Random +-1 tensors of these shapes, each sign with probability 1/2 (AZ-NAS: (bernoulli(0.5) - 0.5) * 2).

    One draw of uniform floats against 1/2 for all of them, in order (the same numbers as one draw per
    tensor, the stream being consumed in the same order), then one move: drawn by the generator's own
    device (the CPU), so a score is the same on every device (CUDA's generator gives other numbers).
    """
    sizes = [shape.numel() for shape in shapes]
    heads = torch.rand(sum(sizes), generator=generator, device=generator.device, dtype=dtype) < 0.5
    signs = heads.to(device=device, dtype=dtype).mul_(2).sub_(1)
    return [flat.view(shape) for flat, shape in zip(signs.split(sizes), shapes, strict=True)]


def block_cross_gradients(features: list[torch.Tensor], generator: torch.Generator
                          ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor | None]:
    """AZ-NAS trainability measurements, from the last block pair to the first, and whether a block is the identity.

    For each pair (f_in, f_out) of consecutive block outputs: g_out random +-1, g_in = (d f_out / d f_in)^T
    g_out; g_in is pixel-unshuffled to f_out's resolution when the block downsamples, and the measurement
    is the (C_in s^2) x C_out matrix g_in^T g_out / (N H_out W_out) over positions. The flag (0-dim bool)
    is set when some g_in == g_out (an identity block, where AZ-NAS's score is -inf).
    """
    pairs = list(reversed(range(1, len(features))))
    if not pairs:
        return (), None
    signals = rademacher_like([features[i].shape for i in pairs], generator, features[0].device, features[0].dtype)
    crosses, identical = [], []
    for index, g_out in zip(pairs, signals, strict=True):
        f_in, f_out = features[index - 1], features[index]
        g_in = None
        if f_out.requires_grad:
            (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
        if g_in is None:  # the block's output does not depend on its input
            g_in = torch.zeros_like(f_in)
        if g_in.shape == g_out.shape:
            identical.append(torch.eq(g_in, g_out).all())
        if g_in.shape[2:] != g_out.shape[2:]:
            g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
        positions = g_out.shape[0] * g_out.shape[2] * g_out.shape[3]
        crosses.append(torch.einsum("nchw,ndhw->cd", g_in, g_out) / positions)
    return tuple(crosses), (torch.stack(identical).any() if identical else None)


@contextmanager
def _input_only_gradients(model: nn.Module) -> Iterator[None]:
    # Trainability differentiates block outputs w.r.t. block inputs only: no parameter gradient is formed.
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def probe_features(model: nn.Module, images: torch.Tensor, needs: Iterable[str], batch_norm: str = "frozen",
                   seed: int = 0, hamming: HammingKernel | None = None) -> FeatureProbe:
    """One forward (plus AZ-NAS's block-wise backward for "block_grads") measuring the FEATURE_NEEDS asked for.

    BatchNorm follows `batch_norm` (jacobians.NORM_MODES); `seed` draws trainability's random signals;
    `hamming`, if given, records NASWOT's codes in the same forward.
    """
    needs = frozenset(needs)
    try:
        return _probe(model, images, needs, batch_norm, seed, hamming, eager=False)
    except InPlaceModified:  # a module changed a recorded map in place: copy every map as it is recorded
        if hamming is not None:
            hamming.reset()
        return _probe(model, images, needs, batch_norm, seed, hamming, eager=True)


def _probe(model: nn.Module, images: torch.Tensor, needs: frozenset[str], batch_norm: str, seed: int,
           hamming: HammingKernel | None, eager: bool) -> FeatureProbe:
    with_grad = "block_grads" in needs
    record = ForwardRecord(needs, hamming, eager)
    with ExitStack() as stack:
        stack.enter_context(batch_norm_mode(model, batch_norm))
        stack.enter_context(record.hooks(model, network_blocks(model)))
        x = images.detach()
        if with_grad:
            stack.enter_context(_input_only_gradients(model))
            x = x.clone().requires_grad_(True)
        else:
            stack.enter_context(torch.no_grad())
        model(x)
        record.finish()
        crosses, identity = (), None
        if with_grad:
            generator = torch.Generator().manual_seed(int(seed))  # CPU: see rademacher_like
            crosses, identity = block_cross_gradients(record.block_outputs, generator)
    correlations, counts = record.module_correlations(first_sample_correlation)
    return FeatureProbe(tuple(record.covariances), crosses, identity, correlations, counts,
                        record.pattern_count(), record.relu_units, record.flops)
