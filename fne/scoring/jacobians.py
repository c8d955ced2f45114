"""Batched Jacobian machinery behind the heuristics: BatchNorm modes, ReLU codes, NTK Gram, input Jacobians.

BatchNorm in train mode normalises each sample with statistics of the whole batch, so the output of
sample i depends on every other sample and a per-sample `vmap` would silently change the function.
fne therefore evaluates a network with its batch statistics *frozen* (mode "frozen", the default): each
BatchNorm layer normalises with the mean and biased variance of the batch it sees, exactly as in train
mode, but those statistics are treated as constants. The forward values are identical to a train-mode
forward (same ReLU codes, same logits), while each sample's function, and so its gradient, depends on
that sample alone. The per-sample loop oracle (`ntk_gram_loop`) uses the same semantics.

Other modes (`NORM_MODES`): "eval" uses the initial running statistics (mean 0, variance 1: BatchNorm
is the identity at init) and "train" is the reference code of TE-NAS and NASWOT (train mode, samples
coupled through the batch statistics; its NTK is only available from the slow per-sample loop and is
kept for measuring what the choice costs).

Three NTK implementations share these semantics and are cross-checked by the tests: one batched backward
with per-sample parameter gradients rebuilt layer by layer (`per_sample_grads.py`, the fast default),
torch.func `vmap(grad(...))` over `functional_call` (any module type), and the per-sample loop.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

log = logging.getLogger(__name__)

NORM_MODES = ("frozen", "eval", "train")
# Bytes held per sample during a forward+backward (saved activations, their gradients, vmap temporaries),
# as a multiple of the bytes of all leaf-module outputs of one forward (conservative; see the benchmark).
ACTIVATION_OVERHEAD = 4.0
HAS_POPCOUNT = hasattr(np, "bitwise_count")  # numpy >= 2.0
EXACT_FLOAT32_SUM = 2**24  # a float32 sum of 0/1 terms is exact up to this many

BatchStats = list[tuple[torch.Tensor, torch.Tensor] | None]


@contextmanager
def relu_inputs(model: nn.Module, add: Callable[[torch.Tensor], object]) -> Iterator[None]:
    """Within the block, `add(x)` sees the input x of every nn.ReLU of the model (a pre-hook: in-place safe)."""
    handles = [m.register_forward_pre_hook(lambda _m, inputs: add(inputs[0]))
               for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def logits_of(output: torch.Tensor | tuple | list) -> torch.Tensor:
    """The logits of a model output: the tensor itself or, for (features, logits) tuples, the last item."""
    return output[-1] if isinstance(output, tuple | list) else output


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of a model, in module order."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def batch_norm_mode(model: nn.Module, mode: str, stats: BatchStats | None = None) -> Iterator[BatchStats]:
    """Within the block, BatchNorm follows `mode` (NORM_MODES); model state is restored afterwards.

    "frozen" without `stats` computes each layer's batch statistics from the input it sees (under
    no_grad, so they are constants for autograd) and records them in the yielded list; with `stats`
    (recorded on the full batch) it reuses them, so that sub-batches or single samples see the very
    same function.
    """
    if mode not in NORM_MODES:
        raise ValueError(f"batch_norm mode {mode!r} is not one of {NORM_MODES}")
    layers = batch_norm_layers(model)
    was_training = model.training
    saved = [(m.running_mean, m.running_var, m.track_running_stats, m.momentum) for m in layers]
    recorded: BatchStats = list(stats) if stats is not None else [None] * len(layers)
    handles = []
    try:
        if mode == "train":
            model.train()
            for m in layers:
                # Without running buffers train mode normalises with the batch statistics as ever and updates
                # nothing: running statistics and batch count stay as they were, even on a non-finite batch.
                m.running_mean = m.running_var = None
                m.track_running_stats = False
        else:
            model.eval()
        if mode == "eval":
            for m in layers:
                if m.running_mean is None:  # no running buffers: the init statistics, mean 0 var 1
                    m.running_mean = torch.zeros(m.num_features, device=m.weight.device if m.affine else None)
                    m.running_var = torch.ones_like(m.running_mean)
                    m.track_running_stats = True
        if mode == "frozen":
            for index, m in enumerate(layers):
                m.track_running_stats = True
                handles.append(m.register_forward_pre_hook(_frozen_stats_hook(index, recorded,
                                                                               stats is None)))
        yield recorded
    finally:
        for handle in handles:
            handle.remove()
        for m, (mean, var, track, momentum) in zip(layers, saved, strict=True):
            m.running_mean, m.running_var, m.track_running_stats, m.momentum = mean, var, track, momentum
        model.train(was_training)


def _frozen_stats_hook(index: int, recorded: BatchStats, live: bool) -> Callable:
    def hook(module: nn.modules.batchnorm._BatchNorm, inputs: tuple[torch.Tensor, ...]) -> None:
        if live or recorded[index] is None:
            with torch.no_grad():
                x = inputs[0]
                dims = [d for d in range(x.dim()) if d != 1]
                recorded[index] = (x.mean(dims), x.var(dims, unbiased=False))
        # Eval-mode batch_norm reads these buffers: train-mode values, constant for autograd.
        module.running_mean, module.running_var = recorded[index]

    return hook


class HammingKernel:
    """Accumulates K_ij = number of ReLU units on which samples i and j agree (Mellor et al. 2021).

    The codes stay on the device until the kernel is read. On CPU they are bit-packed as they come and
    K = N_A - popcount(c_i XOR c_j) is counted once at the end with numpy's popcount (about five times
    faster than a float matmul, exact); on CUDA, K = N_A - |c_i| - |c_j| + 2 c_i.c_j by one matmul per batch
    of codes (integers, exact in float32 up to 2**24 units a matmul, accumulated in float64).
    """

    def __init__(self, n: int, device: torch.device | str):
        self.n = n
        self.device = torch.device(device)
        self.units = 0
        self._packed: list[torch.Tensor] = []
        self._agree: torch.Tensor | None = None

    def reset(self) -> None:
        """Forget everything recorded so far."""
        self._packed.clear()
        self._agree = None
        self.units = 0

    def add(self, pre_activation: torch.Tensor) -> None:
        """Add one ReLU layer's binary codes (pre-activation > 0) of every sample."""
        with torch.no_grad():
            self.add_codes((pre_activation > 0).reshape(pre_activation.shape[0], -1))

    def add_codes(self, positive: torch.Tensor) -> None:
        """Add the binary codes of some units: a bool (N, units) matrix, True where a unit is active."""
        with torch.no_grad():
            self.units += positive.shape[1]
            if positive.is_cuda or not HAS_POPCOUNT:
                for start in range(0, positive.shape[1], EXACT_FLOAT32_SUM):
                    codes = positive[:, start:start + EXACT_FLOAT32_SUM].to(torch.float32)
                    gram = (codes @ codes.T).double()
                    active = gram.diagonal()
                    agree = 2.0 * gram - active[:, None] - active[None, :] + codes.shape[1]
                    self._agree = agree if self._agree is None else self._agree + agree
            else:
                self._packed.append(pack_bits(positive))

    @property
    def kernel(self) -> torch.Tensor:
        """The float64 N x N agreement kernel of everything recorded so far."""
        agree = self._agree if self._agree is not None else torch.zeros(self.n, self.n, dtype=torch.float64,
                                                                         device=self.device)
        if not self._packed:
            return agree.clone()
        packed = (torch.cat(self._packed, 1) if len(self._packed) > 1 else self._packed[0]).numpy()
        # Zero padding to whole 64-bit words is the same in every row, so it never adds a disagreement.
        packed = np.pad(packed, ((0, 0), (0, (-packed.shape[1]) % 8))).view(np.uint64)
        distance = np.zeros((self.n, self.n), dtype=np.int64)
        for i in range(self.n - 1):
            row = np.bitwise_count(packed[i] ^ packed[i + 1:]).sum(axis=1, dtype=np.int64)
            distance[i, i + 1:] = row
            distance[i + 1:, i] = row
        return agree + torch.from_numpy(self.units - distance).to(torch.float64)

    @contextmanager
    def recording(self, model: nn.Module) -> Iterator[HammingKernel]:
        """Within the block, every nn.ReLU of the model adds its input's codes (a pre-hook: in-place safe)."""
        with relu_inputs(model, self.add):
            yield self


def pack_bits(positive: torch.Tensor) -> torch.Tensor:
    """A bool (N, units) matrix as uint8 (N, ceil(units / 8)), eight units a byte, first unit highest (np.packbits)."""
    codes = positive.to(torch.uint8)
    if codes.shape[1] % 8:
        codes = F.pad(codes, (0, -codes.shape[1] % 8))
    return (codes.view(codes.shape[0], -1, 8) * _bit_weights(codes.device)).sum(-1, dtype=torch.uint8)


@functools.cache
def _bit_weights(device: torch.device) -> torch.Tensor:
    return torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=device)


class ActivationBytes:
    """Counts the bytes of all leaf-module outputs of the forwards run inside `counting` (per sample)."""

    def __init__(self) -> None:
        self.total = 0

    @contextmanager
    def counting(self, model: nn.Module) -> Iterator[ActivationBytes]:
        """Within the block, every leaf module adds its output's bytes per sample."""

        def count(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor) and output.dim() > 0:
                self.total += output[0].numel() * output.element_size()

        handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()


@torch.no_grad()
def activation_bytes_per_sample(model: nn.Module, sample: torch.Tensor) -> int:
    """Bytes of all leaf-module outputs of one eval-mode forward of one sample (the memory estimate's unit)."""
    counter = ActivationBytes()
    was_training = model.training
    model.eval()
    try:
        with counter.counting(model):
            model(sample[:1])
    finally:
        model.train(was_training)
    return counter.total


def trainable_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Name -> detached tensor of every parameter with requires_grad (the NTK's theta)."""
    return {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception is an allocator failure (CUDA OOM or a failed CPU allocation)."""
    text = str(error).lower()
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in text or "can't allocate" in text


def per_sample_grads_fn(model: nn.Module, with_input: bool) -> Callable:
    """vmap'd (params, x_chunk) -> per-sample grads of each sample's summed logits (and of x_i)."""
    buffers = dict(model.named_buffers())

    def summed_logits(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return logits_of(functional_call(model, (params, buffers), (x.unsqueeze(0),))).sum()

    return vmap(grad(summed_logits, argnums=(0, 1) if with_input else 0), in_dims=(None, 0))


def vmap_chunk_size(n: int, parameter_count: int, bytes_per_sample: int, memory_budget_mib: float,
                    store_jacobian: bool) -> int:
    """Samples per vmap chunk so that activations, per-sample grads (and the stored J) fit the budget."""
    budget = memory_budget_mib * 2**20 - (n * parameter_count * 4 if store_jacobian else 0)
    per_sample = ACTIVATION_OVERHEAD * bytes_per_sample + 2 * parameter_count * 4
    return int(max(1, min(n, budget // max(per_sample, 1))))


@dataclass(frozen=True)
class NtkResult:
    """The empirical NTK Gram matrix and, when asked for, the per-sample input gradients."""

    kernel: np.ndarray  # float64 N x N, K = J J^T
    input_grads: torch.Tensor | None  # N x (input numel): d(sum of sample i's logits)/d(x_i)
    chunk_size: int  # samples per chunk that finally ran (after any out-of-memory retries)


def ntk_gram_vmap(model: nn.Module, images: torch.Tensor, *, memory_budget_mib: float = 2048.0,
                  with_input_grads: bool = False, chunk_size: int | None = None) -> NtkResult:
    """Empirical NTK K = J J^T from torch.func per-sample gradients, in chunks bounded by the budget.

    The model must be in a per-sample-independent state (frozen stats given, or eval). An out-of-memory
    error halves the chunk and retries. When J (N x P) does not fit in half the budget, blocks of K are
    computed pairwise, recomputing chunk gradients: slower, but memory stays bounded.
    """
    n = images.shape[0]
    params = trainable_parameters(model)
    count = sum(p.numel() for p in params.values())
    store = n * count * 4 <= memory_budget_mib * 2**20 / 2
    if chunk_size is None:
        chunk_size = vmap_chunk_size(n, count, activation_bytes_per_sample(model, images), memory_budget_mib,
                                     store)
    fn = per_sample_grads_fn(model, with_input_grads)
    while True:
        try:
            return _ntk_in_chunks(fn, params, images, chunk_size, store, with_input_grads)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
            if not is_out_of_memory(error) or chunk_size == 1:
                raise
            chunk_size = max(1, chunk_size // 2)
            log.warning("out of memory computing the NTK; retrying with chunks of %d samples", chunk_size)
            if images.is_cuda:
                torch.cuda.empty_cache()


def _flat_chunk(fn: Callable, params: dict[str, torch.Tensor], x: torch.Tensor,
                with_input: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    out = fn(params, x)
    grads, input_grad = out if isinstance(out, tuple) else (out, None)
    if not with_input:
        input_grad = None
    flat = torch.cat([g.reshape(x.shape[0], -1) for g in grads.values()], dim=1)
    return flat, (input_grad.reshape(x.shape[0], -1) if input_grad is not None else None)


def _ntk_in_chunks(fn: Callable, params: dict[str, torch.Tensor], images: torch.Tensor, chunk_size: int,
                   store: bool, with_input: bool) -> NtkResult:
    n = images.shape[0]
    starts = list(range(0, n, chunk_size))
    input_grads: list[torch.Tensor] = []
    if store:
        rows = []
        for start in starts:
            flat, input_grad = _flat_chunk(fn, params, images[start:start + chunk_size], with_input)
            rows.append(flat)
            if input_grad is not None:
                input_grads.append(input_grad)
        jacobian = torch.cat(rows) if len(rows) > 1 else rows[0]
        del rows
        kernel = (jacobian @ jacobian.T).double()
    else:
        kernel = torch.zeros(n, n, dtype=torch.float64, device=images.device)
        for a, start_a in enumerate(starts):
            block_a, input_grad = _flat_chunk(fn, params, images[start_a:start_a + chunk_size], with_input)
            if input_grad is not None:
                input_grads.append(input_grad)
            rows_a = slice(start_a, start_a + block_a.shape[0])
            kernel[rows_a, rows_a] = (block_a @ block_a.T).double()
            for start_b in starts[a + 1:]:
                block_b, _ = _flat_chunk(fn, params, images[start_b:start_b + chunk_size], False)
                rows_b = slice(start_b, start_b + block_b.shape[0])
                kernel[rows_a, rows_b] = (block_a @ block_b.T).double()
                kernel[rows_b, rows_a] = kernel[rows_a, rows_b].T
    kernel = 0.5 * (kernel + kernel.T)  # exact symmetry for eigvalsh
    return NtkResult(kernel.cpu().numpy(), torch.cat(input_grads) if input_grads else None, chunk_size)


def ntk_gram_loop(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """Test oracle: the NTK from a Python loop of one backward per sample (the TE-NAS procedure).

    In eval mode (frozen or running statistics) each sample runs alone; in train mode the batch runs
    once and each sample's logits are backpropagated through the coupled batch statistics, as in TE-NAS.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    rows = []
    if model.training:
        logits = logits_of(model(images))
        for i in range(images.shape[0]):
            grads = torch.autograd.grad(logits[i].sum(), params, retain_graph=True, allow_unused=True)
            rows.append(_flatten(grads, params))
    else:
        for i in range(images.shape[0]):
            grads = torch.autograd.grad(logits_of(model(images[i:i + 1])).sum(), params, allow_unused=True)
            rows.append(_flatten(grads, params))
    jacobian = torch.stack(rows)
    return (jacobian @ jacobian.T).double().cpu().numpy()


def _flatten(grads: tuple[torch.Tensor | None, ...], params: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1)
                      for g, p in zip(grads, params, strict=True)])


def input_jacobian(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """N x (input numel): d(sum of sample i's logits)/d(x_i) from one batched backward (Mellor et al. v1).

    With frozen or eval BatchNorm the samples are independent, so the gradient of the summed batch
    output w.r.t. x_i is exactly sample i's Jacobian; in train mode it includes the batch coupling, as
    in the reference code.
    """
    x = images.detach().clone().requires_grad_(True)
    logits = logits_of(model(x))
    (gradient,) = torch.autograd.grad(logits.sum(), x, allow_unused=True)
    if gradient is None:  # the output does not depend on the input at all
        gradient = torch.zeros_like(x)
    return gradient.reshape(x.shape[0], -1).detach()
