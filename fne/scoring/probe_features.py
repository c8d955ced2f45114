"""One hooked forward for the activation-based scores, and AZ-NAS's block-wise backward of random signals.

A single forward of the batch records, as it goes (and only what some requested heuristic needs):

    block_features       the C x C channel covariance of every block output (AZ-NAS expressivity/progressivity)
    block_grads          the block outputs kept with their graph, then one backward of random +-1 signals
                         block by block (AZ-NAS trainability)
    module_correlations  the C x C channel correlation of the first sample's output of every module (MeCo)
    relu_patterns        the number of distinct per-unit sign patterns over the first samples (SWAP)

The formulas that turn these into scores live with each score (az_nas.py, meco.py, swap.py); this module
only measures. The blocks are `network_blocks(model)`: the network's own `blocks()` (both built-in
spaces define it: stem, then every cell), else its top-level children with module lists expanded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fne.scoring.jacobians import HammingKernel, batch_norm_mode, relu_inputs

FEATURE_NEEDS = ("block_features", "block_grads", "module_correlations", "relu_patterns")
# SWAP's reference (pym1024/SWAP correlation.py, --input_samples 16) counts patterns over 16 samples: with
# many more, nearly every unit's pattern is unique and the count degenerates into a unit count.
SWAP_SAMPLES = 16


@dataclass(frozen=True)
class FeatureProbe:
    """What the hooked forward measured (empty where not asked for)."""

    block_covariances: tuple[np.ndarray, ...] = ()  # float64 C x C per block output, in forward order
    block_cross: tuple[np.ndarray | None, ...] = ()  # per consecutive block pair, last first; None: identity
    module_correlations: tuple[np.ndarray, ...] = ()  # float64 C x C per module output (first sample)
    relu_patterns: int = 0  # distinct sign patterns over the first SWAP_SAMPLES samples, all ReLU units
    relu_units: int = 0  # how many ReLU units were counted


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


def channel_covariance(x: torch.Tensor) -> np.ndarray:
    """C x C covariance of a (N, C, H, W) map over its N*H*W positions (AZ-NAS: biased, 1/(NHW))."""
    with torch.no_grad():
        rows = x.detach().permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        rows = rows - rows.mean(0, keepdim=True)
        return (rows.T @ rows / rows.shape[0]).double().cpu().numpy()


def first_sample_correlation(x: torch.Tensor) -> np.ndarray:
    """C x C Pearson correlation of the first sample's channels over its H*W positions (MeCo).

    As MeCo's code, a channel that is constant (undefined correlation) gets a zero row and column.
    """
    with torch.no_grad():
        channels = x[0].detach().reshape(x.shape[1], -1).double()
        correlation = torch.corrcoef(channels)
        correlation = torch.nan_to_num(correlation, nan=0.0, posinf=0.0, neginf=0.0)
        return correlation.cpu().numpy()


class ReluPatterns:
    """Collects, at every nn.ReLU with a 4-D input, each unit's binary pattern (input > 0) over the first samples."""

    def __init__(self, samples: int = SWAP_SAMPLES):
        self.samples = samples
        self._packed: list[np.ndarray] = []

    def add(self, pre_activation: torch.Tensor) -> None:
        """Add one ReLU layer's units; sign(ReLU(x)) is 1 exactly where x > 0."""
        if pre_activation.dim() != 4:
            return
        with torch.no_grad():
            codes = (pre_activation[:self.samples] > 0).reshape(min(self.samples, pre_activation.shape[0]), -1)
            self._packed.append(np.packbits(codes.T.cpu().numpy(), axis=1))

    @property
    def units(self) -> int:
        """Units recorded so far."""
        return sum(p.shape[0] for p in self._packed)

    def distinct(self) -> int:
        """Number of distinct patterns among all recorded units."""
        if not self._packed:
            return 0
        packed = np.concatenate(self._packed)
        width = -packed.shape[1] % 8  # pad each pattern to whole 64-bit words: same padding in every row
        words = np.ascontiguousarray(np.pad(packed, ((0, 0), (0, width)))).view(np.uint64)
        return int(len(np.unique(words[:, 0]) if words.shape[1] == 1 else np.unique(words, axis=0)))

    @contextmanager
    def recording(self, model: nn.Module) -> Iterator[ReluPatterns]:
        """Within the block, every nn.ReLU of the model adds its input's patterns (a pre-hook: in-place safe)."""
        with relu_inputs(model, self.add):
            yield self


@contextmanager
def _hooked(modules: Iterable[nn.Module], hook) -> Iterator[None]:
    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def rademacher_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random +-1 entries of x's shape, each sign with probability 1/2 (AZ-NAS: (bernoulli(0.5) - 0.5) * 2)."""
    # Uniform floats against 1/2: on CPU about 4x faster than integer or Bernoulli draws of the same signs.
    # Drawn by the generator's own device (the CPU) and then moved, so a score is the same on every device:
    # CUDA's generator gives other numbers for the same seed (the GPU check caught az_trainability differing).
    heads = torch.rand(x.shape, generator=generator, device=generator.device, dtype=x.dtype) < 0.5
    return heads.to(device=x.device, dtype=x.dtype).mul_(2).sub_(1)


def block_cross_gradients(features: list[torch.Tensor], generator: torch.Generator) -> list[np.ndarray | None]:
    """AZ-NAS trainability measurements, from the last block pair to the first.

    For each pair (f_in, f_out) of consecutive block outputs: g_out random +-1, g_in = (d f_out / d f_in)^T
    g_out; g_in is pixel-unshuffled to f_out's resolution when the block downsamples, and the measurement
    is the (C_in s^2) x C_out matrix g_in^T g_out / (N H_out W_out) over positions. None when g_in == g_out
    (an identity block, where AZ-NAS's score is -inf).
    """
    crosses: list[np.ndarray | None] = []
    for index in reversed(range(1, len(features))):
        f_in, f_out = features[index - 1], features[index]
        g_out = rademacher_like(f_out, generator)
        g_in = None
        if f_out.requires_grad:
            (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
        if g_in is None:  # the block's output does not depend on its input
            g_in = torch.zeros_like(f_in)
        if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
            crosses.append(None)
            continue
        if g_in.shape[2:] != g_out.shape[2:]:
            g_in = F.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
        rows_out = g_out.permute(0, 2, 3, 1).reshape(-1, g_out.shape[1])
        rows_in = g_in.permute(0, 2, 3, 1).reshape(-1, g_in.shape[1])
        crosses.append((rows_in.T @ rows_out / rows_out.shape[0]).detach().double().cpu().numpy())
    return crosses


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
    with_grad = "block_grads" in needs
    block_outputs: list[torch.Tensor] = []
    covariances: list[np.ndarray] = []
    correlations: list[np.ndarray] = []
    patterns = ReluPatterns() if "relu_patterns" in needs else None

    def on_block(_module: nn.Module, _inputs: tuple, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            if "block_features" in needs:
                covariances.append(channel_covariance(output))
            if with_grad:
                block_outputs.append(output)

    def on_module(_module: nn.Module, _inputs: tuple, output: object) -> None:
        # MeCo's code hooks every module; outputs with fewer than two positions give an all-zero
        # correlation (minimum eigenvalue 0), so leaving them out does not change the sum.
        if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1:
            correlations.append(first_sample_correlation(output))

    with ExitStack() as stack:
        stack.enter_context(batch_norm_mode(model, batch_norm))
        if needs & {"block_features", "block_grads"}:
            stack.enter_context(_hooked(network_blocks(model), on_block))
        if "module_correlations" in needs:
            stack.enter_context(_hooked(model.modules(), on_module))
        if patterns is not None:
            stack.enter_context(patterns.recording(model))
        if hamming is not None:
            stack.enter_context(hamming.recording(model))
        x = images.detach()
        if with_grad:
            stack.enter_context(_input_only_gradients(model))
            x = x.clone().requires_grad_(True)
        else:
            stack.enter_context(torch.no_grad())
        model(x)
        crosses = ()
        if with_grad:
            generator = torch.Generator().manual_seed(int(seed))  # CPU: see rademacher_like
            crosses = tuple(block_cross_gradients(block_outputs, generator))
    return FeatureProbe(tuple(covariances), crosses, tuple(correlations),
                        patterns.distinct() if patterns is not None else 0,
                        patterns.units if patterns is not None else 0)
