"""Candidate operations of the DARTS-like space and the registry that names them.

The op modules follow the DARTS reference code (Liu et al., ICLR 2019, quark0/darts `operations.py`):
a factory `(C, stride, affine) -> nn.Module` keeps channels at C and downsamples by `stride`.
Every op has a one-character code so that it can stand at one position of a genotype string.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fne.errors import ConfigError, GenotypeError
from fne.genotopheno.batch_norm import batch_norm
from fne.registry import Registry

OpFactory = Callable[[int, int, bool], nn.Module]

# Characters with a structural meaning in genotype strings can never be op codes.
RESERVED_CHARS = frozenset("0123456789|.-+~ ")


@dataclass(frozen=True)
class OpSpec:
    """One registered op: its DARTS name, its genotype character and its module factory."""

    name: str
    code: str
    factory: OpFactory


class OpRegistry:
    """Name <-> code <-> factory table: two `Registry`s over the same specs; refuses duplicate names and codes."""

    def __init__(self, title: str):
        self.title = title
        self._by_name: Registry[OpSpec] = Registry(f"{title} op")
        self._by_code: Registry[OpSpec] = Registry(f"{title} op code")

    def register(self, name: str, code: str) -> Callable[[OpFactory], OpFactory]:
        """Decorator: register `factory(C, stride, affine)` under `name` with genotype character `code`."""

        def decorate(factory: OpFactory) -> OpFactory:
            if name in self._by_name:
                raise ConfigError(f"{self.title}: op name {name!r} is already registered")
            if not isinstance(code, str) or len(code) != 1 or code in RESERVED_CHARS or not code.isprintable():
                raise ConfigError(f"{self.title}: op code {code!r} must be one printable non-digit character "
                                  f"outside {''.join(sorted(RESERVED_CHARS))!r}")
            if code in self._by_code:
                raise ConfigError(f"{self.title}: op code {code!r} is already used by {self._by_code[code].name!r}")
            spec = OpSpec(name, code, factory)
            self._by_name.add(name, spec)
            self._by_code.add(code, spec)
            return factory

        return decorate

    def unregister(self, name: str) -> None:
        """Remove a user-registered op (mainly for tests)."""
        spec = self._by_name.unregister(name)
        self._by_code.unregister(spec.code)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def names(self) -> tuple[str, ...]:
        """Registered op names in registration order."""
        return self._by_name.names()

    @property
    def codes(self) -> str:
        """Registered op codes in registration order, as one string (a genotype alphabet)."""
        return "".join(self._by_code.names())

    def spec(self, name: str) -> OpSpec:
        """The spec of op `name`; a GenotypeError lists the known names (an unknown op is a bad genotype)."""
        if name not in self._by_name:
            raise GenotypeError(f"unknown op {name!r}; known {self.title} ops: {', '.join(self._by_name)}")
        return self._by_name[name]

    def code_of(self, name: str) -> str:
        """Genotype character of op `name`."""
        return self.spec(name).code

    def name_of(self, code: str) -> str:
        """Op name of genotype character `code`."""
        if code not in self._by_code:
            raise GenotypeError(f"unknown op code {code!r}; known codes: {self.codes}")
        return self._by_code[code].name

    def build(self, name: str, C: int, stride: int, affine: bool = True) -> nn.Module:
        """Instantiate op `name` with C channels and the given stride."""
        return self.spec(name).factory(C, stride, affine)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv -> BN, the DARTS pre-activation conv."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            batch_norm(C_out, affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> dilated depthwise conv -> pointwise conv -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int,
                 affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            batch_norm(C_out, affine),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConvs with dilation 1, as in DARTS."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, affine: bool = True):
        super().__init__(
            DilConv(C_in, C_in, kernel_size, stride, padding, 1, affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, 1, affine),
        )


class Identity(nn.Module):
    """x -> x (kept as a class so drop-path can recognise it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The `none` op: zeros of the output shape, so a cut edge still has a well-defined tensor."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve resolution with two offset 1x1 stride-2 convs whose outputs are concatenated (DARTS)."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        # Split C_out unevenly when it is odd so any channel width is legal.
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - C_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = batch_norm(C_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


DARTS_OPS = OpRegistry("DARTS")


@DARTS_OPS.register("none", "n")
def _none(C: int, stride: int, affine: bool) -> nn.Module:
    return Zero(stride)


@DARTS_OPS.register("skip_connect", "k")
def _skip(C: int, stride: int, affine: bool) -> nn.Module:
    return Identity() if stride == 1 else FactorizedReduce(C, C, affine)


@DARTS_OPS.register("sep_conv_3x3", "s")
def _sep3(C: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(C, C, 3, stride, 1, affine)


@DARTS_OPS.register("sep_conv_5x5", "S")
def _sep5(C: int, stride: int, affine: bool) -> nn.Module:
    return SepConv(C, C, 5, stride, 2, affine)


@DARTS_OPS.register("dil_conv_3x3", "d")
def _dil3(C: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(C, C, 3, stride, 2, 2, affine)


@DARTS_OPS.register("dil_conv_5x5", "D")
def _dil5(C: int, stride: int, affine: bool) -> nn.Module:
    return DilConv(C, C, 5, stride, 4, 2, affine)


@DARTS_OPS.register("max_pool_3x3", "m")
def _max3(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.MaxPool2d(3, stride=stride, padding=1)


@DARTS_OPS.register("avg_pool_3x3", "a")
def _avg3(C: int, stride: int, affine: bool) -> nn.Module:
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
