"""Phenotype: a Genotype stacked into a CIFAR network (DARTS `model.py::NetworkCIFAR` layout)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fne.errors import ConfigError
from fne.genotopheno.batch_norm import batch_norm
from fne.genotopheno.cells import SearchCell
from fne.genotopheno.genotype import Genotype


@contextmanager
def seeded(seed: int | None):
    """Run the block under a fixed torch seed without touching the caller's global RNG state."""
    if seed is None:
        yield
        return
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS auxiliary classifier on an 8x8 feature map (other sizes pooled to 8x8 first), used only in training."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (8, 8):  # inputs other than 32x32: the head's 5/3 pool and 2x2 conv expect 8x8
            x = F.adaptive_avg_pool2d(x, 8)
        return self.classifier(self.features(x).flatten(1))


def stage_layout(genotype: Genotype, layers: int | None) -> list[tuple[int, bool]]:
    """(stage, is_reduction) of every cell: the genotype's cell counts, or DARTS's layers with reductions at k/S."""
    stages = len(genotype.widths)
    layout: list[tuple[int, bool]] = []
    if layers is None:
        for stage, count in enumerate(genotype.cells_per_stage):
            if stage:
                layout.append((stage, True))
            layout += [(stage, False)] * count
        return layout
    if layers < 2 * stages - 1:
        raise ConfigError(f"layers={layers} is too few for {stages} stages: need at least {2 * stages - 1}")
    reductions = {layers * k // stages for k in range(1, stages)}
    stage = 0
    for i in range(layers):
        if i in reductions:
            stage += 1
        layout.append((stage, i in reductions))
    return layout


def stage_widths(genotype: Genotype, C: int | None) -> tuple[int, ...]:
    """Per-stage channels: the genotype's, or scaled so that stage 0 has C (C, 2C, 4C for 16.32.64)."""
    if C is None:
        return genotype.widths
    if C < 1:
        raise ConfigError(f"C={C} channels must be positive")
    return tuple(max(1, round(w * C / genotype.widths[0])) for w in genotype.widths)


class Network(nn.Module):
    """Stem -> cells (normal and reduction) -> global average pooling -> linear classifier."""

    def __init__(self, genotype: Genotype, C: int | None = None, layers: int | None = None, num_classes: int = 10,
                 stem_multiplier: int = 3, auxiliary: bool = False):
        super().__init__()
        self.genotype = genotype
        widths = stage_widths(genotype, C)
        layout = stage_layout(genotype, layers)
        C_stem = stem_multiplier * widths[0]
        self.stem = nn.Sequential(nn.Conv2d(3, C_stem, 3, padding=1, bias=False), batch_norm(C_stem))
        C_prev_prev, C_prev = C_stem, C_stem
        self.cells = nn.ModuleList()
        reduction_prev = False
        self.aux_index = -1
        # DARTS attaches the auxiliary head to the output of the last reduction cell (an 8x8 map on CIFAR).
        last_stage = len(widths) - 1
        for index, (stage, reduction) in enumerate(layout):
            cell_genotype = genotype.reduce if reduction else genotype.normal
            cell = SearchCell(cell_genotype, C_prev_prev, C_prev, widths[stage], reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * widths[stage]
            if reduction and stage == last_stage:
                self.aux_index, C_aux = index, C_prev
        self.auxiliary = AuxiliaryHeadCIFAR(C_aux, num_classes) if auxiliary and self.aux_index >= 0 else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.drop_path_prob = 0.0

    def blocks(self) -> list[nn.Module]:
        """The feature stages in forward order, stem then every cell: what block-wise scores (AZ-NAS) hook."""
        return [self.stem, *self.cells]

    def set_drop_path(self, prob: float) -> None:
        """Set the drop-path probability of every cell (DARTS schedules it linearly over epochs)."""
        self.drop_path_prob = prob
        for cell in self.cells:
            cell.drop_prob = prob

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled features and, in training with an auxiliary head, the auxiliary logits."""
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i == self.aux_index and self.auxiliary is not None and self.training:
                aux = self.auxiliary(s1)
        return self.global_pooling(s1).flatten(1), aux

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and auxiliary logits (None outside training or without the head)."""
        features, aux = self.forward_features(x)
        return self.classifier(features), aux

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_aux(x)[0]


def build_network(genotype: Genotype, C: int | None = None, layers: int | None = None, num_classes: int = 10, *,
                  stem_multiplier: int = 3, auxiliary: bool = False, seed: int | None = None) -> Network:
    """Build the network of a genotype; C/layers override its widths and cell counts, seed fixes the init."""
    if num_classes < 1:
        raise ConfigError(f"num_classes={num_classes} must be positive")
    with seeded(seed):
        return Network(genotype, C, layers, num_classes, stem_multiplier, auxiliary)


def count_parameters(model: nn.Module, include_auxiliary: bool = False) -> int:
    """Trainable parameter count; the auxiliary head is left out as DARTS and NB201 report it."""
    return sum(p.numel() for name, p in model.named_parameters()
               if p.requires_grad and (include_auxiliary or not name.startswith("auxiliary")))


def count_flops(model: nn.Module, input_shape: Sequence[int] = (1, 3, 32, 32)) -> int:
    """Floating-point operations (2 per multiply-add) of one eval-mode forward pass of one input."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(*input_shape, device=device))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
