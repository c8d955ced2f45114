"""How much a piece of code dispatches: top-level ATen calls and host transfers, counted the same way everywhere.

    counts = count_launches(lambda: fne.score(["C+CC+kCC"], space="nb201"))
    print(counts.aten_calls, counts.host_transfers)

On a GPU every top-level ATen call is at least one kernel launch or allocator round trip issued from
Python, and every host transfer (`.numpy()`, `.item()`, `.tolist()`, `.cpu()`, `float()`, `int()`,
`bool()` of a tensor, `torch.equal`) waits for the device to drain. Both are counted on the CPU as well,
where they cost little, because the count is a property of the code path, not of the device: a path that
dispatches 12,000 calls on the CPU dispatches them on the GPU too. Top-level means an ATen event of
torch.profiler with no ATen event above it (a composite op such as `corrcoef` counts once; the autograd
engine's backward ops count one each), the measure of issue 23 and of benchmarks/bench_launches.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch.profiler import ProfilerActivity, profile

# Tensor methods that bring a value to the host (a device sync on a GPU), and the functions that do.
TRANSFER_METHODS = ("numpy", "item", "tolist", "cpu", "__float__", "__int__", "__bool__", "__index__")
TRANSFER_FUNCTIONS = ("equal",)


@dataclass(frozen=True)
class LaunchCount:
    """What one call of a function dispatched: top-level ATen calls (by name) and host transfers (by method)."""

    aten_calls: int
    host_transfers: int
    aten_by_name: Counter = field(default_factory=Counter, compare=False)
    transfers_by_method: Counter = field(default_factory=Counter, compare=False)


@contextmanager
def counting_transfers() -> Iterator[Counter]:
    """Within the block, every host transfer of a tensor is counted in the yielded Counter (by method name)."""
    counts: Counter = Counter()
    saved = {name: getattr(torch.Tensor, name) for name in TRANSFER_METHODS}
    saved_functions = {name: getattr(torch, name) for name in TRANSFER_FUNCTIONS}

    def wrap(name: str, original: Callable) -> Callable:
        def counted(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)
        return counted

    try:
        for name, original in saved.items():
            setattr(torch.Tensor, name, wrap(name, original))
        for name, original in saved_functions.items():
            setattr(torch, name, wrap(name, original))
        yield counts
    finally:
        for name, original in saved.items():
            setattr(torch.Tensor, name, original)
        for name, original in saved_functions.items():
            setattr(torch, name, original)


def top_level_aten_calls(events) -> Counter:
    """Names of the profiler's ATen events that have no ATen event above them, counted."""
    names: Counter = Counter()
    for event in events:
        if not event.name.startswith("aten::"):
            continue
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith("aten::"):
            parent = parent.cpu_parent
        if parent is None:
            names[event.name] += 1
    return names


def count_launches(fn: Callable[[], object]) -> LaunchCount:
    """Run `fn` once under the profiler and the transfer counter; what it dispatched."""
    with counting_transfers() as transfers, profile(activities=[ProfilerActivity.CPU]) as profiler:
        fn()
    names = top_level_aten_calls(profiler.events())
    return LaunchCount(sum(names.values()), sum(transfers.values()), names, transfers)
