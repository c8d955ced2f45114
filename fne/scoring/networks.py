"""The networks the heuristics score: built lean on the CPU, moved in one copy, and on a GPU built one ahead.

A candidate's network is initialised from its own seed by the CPU's generator (so a score is the same on
every device), without BatchNorm running statistics (never read by a probe: genotopheno/batch_norm.py), and
reaches the scoring device as one flat copy (device.move_module). Building is Python work on the host; on a
GPU the probe is kernels queued on the device, and the host waits only for the scores' one transfer. So
when scoring on CUDA, `BuildAhead` builds the next candidate in a background thread while the current one
is probed, and the host's wait overlaps with the next build.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import torch

from fne.device import move_module
from fne.genotopheno.batch_norm import without_running_stats
from fne.genotopheno.search_space import SearchSpace


def build_lean(space: SearchSpace, canonical: str, *, C: int | None, layers: int | None, num_classes: int,
               seed: int) -> torch.nn.Module:
    """The candidate's network as the heuristics score it, on the CPU: its seed's weights, no running statistics."""
    with without_running_stats():
        return space.build(canonical, C=C, layers=layers, num_classes=num_classes, seed=seed)


class BuildAhead:
    """Builds candidates' networks for scoring; with `ahead`, the next one in a background thread.

    Only the build runs in the thread (the global CPU generator is seeded there, under fork_rng as every
    build is; the probe draws from its own generators). Failures surface when the network is asked for.
    """

    def __init__(self, space: SearchSpace, C: int | None, layers: int | None, num_classes: int,
                 device: torch.device, dtype: torch.dtype, ahead: bool = False):
        self.space, self.C, self.layers, self.num_classes = space, C, layers, num_classes
        self.device, self.dtype = device, dtype
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fne-build") if ahead else None
        self._pending: dict[tuple[str, int], Future] = {}

    def _build(self, canonical: str, seed: int) -> torch.nn.Module:
        return build_lean(self.space, canonical, C=self.C, layers=self.layers, num_classes=self.num_classes,
                          seed=seed)

    def prepare(self, canonical: str, seed: int) -> None:
        """Start building this network in the background (nothing without `ahead`)."""
        if self._pool is not None and (canonical, seed) not in self._pending:
            self._pending[canonical, seed] = self._pool.submit(self._build, canonical, seed)

    def network(self, canonical: str, seed: int) -> torch.nn.Module:
        """The network on the scoring device: the one prepared, else built now."""
        future = self._pending.pop((canonical, seed), None)
        model = future.result() if future is not None else self._build(canonical, seed)
        return move_module(model, self.device, self.dtype)

    def close(self) -> None:
        """Stop the background thread (waiting for a build under way)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pending.clear()
