"""Tiny networks and architectures shared by the scoring tests."""

from __future__ import annotations

import torch
from torch import nn

from fne.genotopheno.spaces import get_space

NB201_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
DARTS_ARCH = "s0s1-S0d1-s1k0-k0D2|m0m1-k2a1-m0k2-k2m1|16.32.64|1.1.1"
IDENTITY_CELL = "|skip_connect~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # node 3 = the cell input
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def tiny_net(space: str, arch: str, seed: int = 1, C: int = 4, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A C-wide network of `arch`, one cell per stage, in `dtype`."""
    builder = get_space(space)
    layers = {"layers": 1} if space == "nb201" else {}
    return builder.build(arch, C=C, seed=seed, **layers).to(dtype)
