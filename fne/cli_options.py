"""Click options shared by every fne command: `--threads` (the threading rule) and `--device`.

Importing this module does not import torch (see fne/threads.py for why that matters): the device type
checks only the spelling; whether CUDA is there is fne.device.resolve_device's job at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from fne.threads import THREADS_ENV, apply_thread_rule

F = TypeVar("F", bound=Callable[..., Any])

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
DEVICE_METAVAR = "[auto|cpu|cuda|cuda:N]"


class DeviceType(click.ParamType):
    """A device name: auto, cpu, cuda or cuda:N (case and surrounding spaces ignored); normalised to lower case."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        """The normalised device string, or a one-line usage error naming the value."""
        text = str(value).strip().lower()
        if not DEVICE_PATTERN.fullmatch(text):
            self.fail(f"{value!r} is not a device; expected auto, cpu, cuda or cuda:N (N = 0, 1, ...)", param, ctx)
        return text

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        """How --help shows the accepted values."""
        return DEVICE_METAVAR


DEVICE = DeviceType()


def device_option(function: F) -> F:
    """`--device auto|cpu|cuda|cuda:N` (default auto: CUDA when available), passed as `device`."""
    return click.option("--device", type=DEVICE, default="auto", show_default=True,
                        help="auto (CUDA when available), cpu, cuda or cuda:N.")(function)


def _apply_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if not ctx.resilient_parsing:  # not while the shell completes a command line
        apply_thread_rule(value)
    return value


def threads_option(function: F) -> F:
    """`--threads N` (or FNE_THREADS=N): applies fne's threading rule (fne/threads.py) first; not passed on."""
    # Eager, so it runs before any other option's conversion could import torch.
    return click.option("--threads", type=click.IntRange(min=1), default=None, envvar=THREADS_ENV,
                        show_envvar=True, is_eager=True, expose_value=False, callback=_apply_threads,
                        help="torch CPU threads  [default: the cores this process may use]")(function)
