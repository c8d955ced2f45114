"""The BatchNorm layer of fne's networks, and building them for scoring without running statistics.

A network that is only scored never reads or updates BatchNorm's running statistics: every probe
normalises with the statistics of its own batch (scoring/jacobians.py `batch_norm_mode`). Yet the three
running buffers and their resets are 9 of the 15 tensor operations that constructing one nn.BatchNorm2d
dispatches, so inside `without_running_stats()` fne's ops, cells and stems build their BatchNorm layers
with `track_running_stats=False`: the same parameters, the same draws of the same random generator, the
same forward in train mode, a third of the construction cost. Networks built for training or export
(outside the block) keep their running statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from torch import nn

_RUNNING_STATS: ContextVar[bool] = ContextVar("fne_batch_norm_running_stats", default=True)


def batch_norm(C: int, affine: bool = True) -> nn.BatchNorm2d:
    """nn.BatchNorm2d(C, affine=affine), with running statistics except inside `without_running_stats()`."""
    return nn.BatchNorm2d(C, affine=affine, track_running_stats=_RUNNING_STATS.get())


@contextmanager
def without_running_stats() -> Iterator[None]:
    """Within the block (this thread or task only), fne's networks are built without BatchNorm running buffers."""
    token = _RUNNING_STATS.set(False)
    try:
        yield
    finally:
        _RUNNING_STATS.reset(token)
