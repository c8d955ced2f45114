"""What the feature probe's hooks record during its one forward, batched block by block on the device.

The hooks of probe_features.py only take views: the first sample of every module output (MeCo), every
4-D ReLU input flattened (SWAP and NASWOT), every block output (AZ-NAS). When a block returns, its pending
views are stacked (one copy per map shape) and its ReLU inputs concatenated into one sign matrix, so the
per-module work is one view and the per-block work a handful of large operations; nothing leaves the
device. A view is only valid while nothing writes into the tensor it shows: every view carries the
tensor's version counter, and a map written in place before its block returned (an in-place ReLU, say)
raises InPlaceModified, on which the probe runs again copying each map as it is recorded (`eager`).

FLOPs come from the same forward: a Conv2d's are 2 x its output elements x its kernel's inputs per output
(C_in / groups x kh x kw), a Linear's 2 x in x out per row, exactly what torch's FlopCounterMode counts
for these layers (fitness.py falls back to counting with FlopCounterMode when a module of another kind,
whose FLOPs its output shape does not tell, is in the network).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from fne.scoring.jacobians import HammingKernel

# SWAP's reference (pym1024/SWAP correlation.py, --input_samples 16) counts patterns over 16 samples: with
# many more, nearly every unit's pattern is unique and the count degenerates into a unit count.
SWAP_SAMPLES = 16
# Layers whose FLOPs follow from their output shape, and layers FlopCounterMode counts none for.
FLOP_LAYERS = (nn.Conv2d, nn.Linear)
FLOP_FREE = (nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.Sequential,
             nn.ModuleList, nn.Dropout, nn.Flatten)
FNE_MODULES = "fne.genotopheno."  # fne's own ops, cells and networks: only the layers above do arithmetic


class InPlaceModified(Exception):
    """A map recorded as a view was written in place before its block returned."""


def flops_from_shapes(model: nn.Module) -> bool:
    """Whether every module of the model is a layer whose FLOPs the hooks count, or does none (see FLOP_FREE)."""
    return all(isinstance(m, FLOP_LAYERS + FLOP_FREE) or type(m).__module__.startswith(FNE_MODULES)
               for m in model.modules())


def channel_covariance(x: torch.Tensor) -> torch.Tensor:
    """C x C covariance of a (N, C, H, W) map over its N*H*W positions (AZ-NAS: biased, 1/(NHW))."""
    with torch.no_grad():
        rows = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
        rows = rows - rows.mean(0, keepdim=True)
        return rows.T @ rows / rows.shape[0]


def layer_flops(module: nn.Module, output: torch.Tensor) -> int:
    """FLOPs of one sample through a Conv2d or Linear, from its output shape (as FlopCounterMode counts them)."""
    per_sample = math.prod(output.shape[1:])
    if isinstance(module, nn.Conv2d):
        return 2 * per_sample * module.in_channels // module.groups * math.prod(module.kernel_size)
    return 2 * per_sample * module.in_features


class ForwardRecord:
    """The hooks of one feature forward and what they collected (see the module docstring)."""

    def __init__(self, needs: frozenset[str], hamming: HammingKernel | None = None, eager: bool = False):
        self.needs, self.hamming, self.eager = needs, hamming, eager
        self.covariances: list[torch.Tensor] = []
        self.block_outputs: list[torch.Tensor] = []
        self.relu_units = 0
        self.flops: int | None = None
        self._maps: list[tuple[torch.Tensor, int, int]] = []  # pending (first-sample view, version, index)
        self._map_counts: list[int] = []  # per recorded map: how many hooked modules output it
        self._last_output: torch.Tensor | None = None
        self._stacks: dict[tuple[int, ...], list[torch.Tensor]] = defaultdict(list)
        self._stacked: dict[tuple[int, ...], list[int]] = defaultdict(list)  # map indices, in stack order
        self._relus: list[tuple[torch.Tensor, int]] = []  # pending (input flattened to (N, units), version)
        self._codes: list[torch.Tensor] = []  # per block, SWAP's pattern of every unit as an integer
        self._bits: torch.Tensor | None = None  # 2**sample, to read a pattern as that integer

    @contextmanager
    def hooks(self, model: nn.Module, blocks: list[nn.Module]) -> Iterator[ForwardRecord]:
        """Within the block, the model's forwards are recorded."""
        handles = []
        if "module_correlations" in self.needs:  # first: a block's own output is recorded before it is flushed
            handles += [m.register_forward_hook(self._on_module) for m in model.modules()]
        if "relu_patterns" in self.needs or self.hamming is not None:
            handles += [m.register_forward_pre_hook(self._on_relu) for m in model.modules() if isinstance(m, nn.ReLU)]
        if flops_from_shapes(model):
            self.flops = 0
            handles += [m.register_forward_hook(self._on_layer) for m in model.modules() if isinstance(m, FLOP_LAYERS)]
        handles += [m.register_forward_hook(self._on_block) for m in blocks]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def _on_module(self, _module: nn.Module, _inputs: tuple, output: object) -> None:
        # MeCo's code hooks every module; outputs with fewer than two positions give an all-zero correlation
        # (minimum eigenvalue 0), so leaving them out does not change the sum. A container returns its last
        # layer's very tensor: counted again, measured once.
        if not (isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1):
            return
        if output is self._last_output:
            self._map_counts[-1] += 1
            return
        self._last_output = output
        with torch.no_grad():
            first = output[0].clone() if self.eager else output[0]
        self._maps.append((first, output._version, len(self._map_counts)))
        self._map_counts.append(1)

    def _on_relu(self, _module: nn.Module, inputs: tuple) -> None:
        x = inputs[0]
        with torch.no_grad():
            if x.dim() != 4:  # NASWOT counts every ReLU; SWAP only those of feature maps
                if self.hamming is not None:
                    self.hamming.add(x)
                return
            flat = x.reshape(x.shape[0], -1)
            self._relus.append((flat.clone() if self.eager else flat, x._version))
            self.relu_units += flat.shape[1]

    def _on_layer(self, module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        self.flops += layer_flops(module, output)

    def _on_block(self, _module: nn.Module, _inputs: tuple, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 4:
            if "block_features" in self.needs:
                self.covariances.append(channel_covariance(output))
            if "block_grads" in self.needs:
                self.block_outputs.append(output)
        self._flush()

    def finish(self) -> None:
        """Flush what the modules after the last block recorded (pooling, classifier)."""
        self._flush()

    def _flush(self) -> None:
        with torch.no_grad():
            if self._maps:
                self._stack_maps()
            if self._relus:
                self._sign_codes()

    def _stack_maps(self) -> None:
        by_shape: dict[tuple[int, ...], list[tuple[torch.Tensor, int, int]]] = defaultdict(list)
        for view, version, index in self._maps:
            if view._version != version:
                raise InPlaceModified("a module output was written in place after it was recorded")
            by_shape[tuple(view.shape)].append((view, version, index))
        for shape, items in by_shape.items():
            self._stacks[shape].append(torch.stack([view for view, _, _ in items]))
            self._stacked[shape].extend(index for _, _, index in items)
        self._maps.clear()
        self._last_output = None

    def _sign_codes(self) -> None:
        if any(flat._version != version for flat, version in self._relus):
            raise InPlaceModified("a ReLU input was written in place after it was recorded")
        flats = [flat for flat, _ in self._relus]
        positive = (torch.cat(flats, 1) if len(flats) > 1 else flats[0]) > 0
        self._relus.clear()
        if self.hamming is not None:
            self.hamming.add_codes(positive)
        if "relu_patterns" in self.needs:
            samples = positive[:SWAP_SAMPLES]
            # Each unit's sign pattern over the samples as one integer (exact in float32 below 2**24).
            if self._bits is None:
                self._bits = torch.pow(2.0, torch.arange(samples.shape[0], dtype=torch.float32, device=samples.device))
            self._codes.append(self._bits @ samples.to(torch.float32))

    def pattern_count(self) -> torch.Tensor | None:
        """SWAP: the number of distinct sign patterns among all recorded units (0-dim), None if not recorded."""
        if not self._codes:
            return None
        codes = (torch.cat(self._codes) if len(self._codes) > 1 else self._codes[0]).to(torch.int64)
        return torch.count_nonzero(torch.bincount(codes, minlength=2 ** SWAP_SAMPLES))

    def module_correlations(self, correlate: Callable[[torch.Tensor], torch.Tensor]
                            ) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """(B, C, C) correlations of the recorded maps per channel count, and how often each was output."""
        by_channels: dict[int, list[torch.Tensor]] = defaultdict(list)
        counts: dict[int, list[int]] = defaultdict(list)
        for shape, stacks in self._stacks.items():
            maps = torch.cat(stacks) if len(stacks) > 1 else stacks[0]
            by_channels[shape[0]].append(correlate(maps))
            counts[shape[0]].extend(self._map_counts[i] for i in self._stacked[shape])
        correlations = tuple(torch.cat(c) if len(c) > 1 else c[0] for c in by_channels.values())
        weights = tuple(torch.tensor(counts[c], dtype=torch.float64, device=m.device)
                        for c, m in zip(by_channels, correlations, strict=True))
        return correlations, weights
