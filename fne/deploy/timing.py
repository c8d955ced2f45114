"""The one timer of fne's latency figures: torch.utils.benchmark's blocked autorange, its median, per call.

torch.utils.benchmark warms up, picks how many calls make a block, synchronises CUDA around each block and
keeps the thread count it is given; the median of the blocks is robust to the other processes of a loaded
machine stealing the odd block. Everything fne times (latency-table parts, whole networks, the export's
PyTorch and onnxruntime figures) goes through `median_ms`, so the numbers compare.

The clock: on a CPU at one thread the work of a call is the process's CPU time, which does not grow while
other processes hold the core (wall time does: on this 2-core machine shared by four jobs it grew up to 2x),
so one-thread CPU latencies are timed with `time.process_time`. With more threads, or on a GPU, latency is
wall time (threads wait on each other; a GPU works while the CPU waits), timed with torch's default clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils import benchmark

DEFAULT_MIN_RUN_TIME = 0.2  # seconds of timed calls per measurement, after one warm-up call


@dataclass(frozen=True)
class Timing:
    """One measurement: median and interquartile range of the blocks, in ms per call, and the calls timed."""

    median_ms: float
    iqr_ms: float
    calls: int


def clock_name(device: torch.device) -> str:
    """"cpu" (process CPU time) on a CPU at one torch thread, else "wall"."""
    # torch's Timer refuses any clock but wall time where a GPU is present (it could not synchronise it).
    one_thread_cpu = torch.device(device).type == "cpu" and torch.get_num_threads() == 1
    return "cpu" if one_thread_cpu and not torch.cuda.is_available() else "wall"


def median_ms(call: Callable[[], object], min_run_time: float = DEFAULT_MIN_RUN_TIME, clock: str = "wall") -> Timing:
    """Time `call()` with torch.utils.benchmark.Timer.blocked_autorange at torch's current thread count."""
    call()  # warm-up: lazy initialisation, allocator growth, cuDNN's algorithm choice
    # Timer sets its own thread count (1 by default) while it times: hand it the one the caller runs with.
    # Its default clock is wall time that synchronises the GPU first.
    clocks = {"cpu": {"timer": time.process_time}, "wall": {}}
    timer = benchmark.Timer(stmt="call()", globals={"call": call}, num_threads=torch.get_num_threads(),
                            **clocks[clock])
    measurement = timer.blocked_autorange(min_run_time=min_run_time)
    calls = len(measurement.times) * measurement.number_per_run
    return Timing(measurement.median * 1e3, measurement.iqr * 1e3, calls)


def inference_call(module: nn.Module, inputs: Sequence[torch.Tensor]) -> Callable[[], object]:
    """A call running `module(*inputs)` as deployed: eval mode, under torch.inference_mode."""
    module.eval()

    def call() -> object:
        with torch.inference_mode():
            return module(*inputs)

    return call


def module_latency(module: nn.Module, input_shapes: Sequence[Sequence[int]], device: torch.device,
                   min_run_time: float = DEFAULT_MIN_RUN_TIME, seed: int = 0) -> Timing:
    """Latency of one eval-mode forward of `module` on seeded random inputs of these shapes, on `device`."""
    generator = torch.Generator().manual_seed(seed)
    inputs = [torch.randn(*shape, generator=generator).to(device) for shape in input_shapes]
    return median_ms(inference_call(module.to(device), inputs), min_run_time, clock_name(device))
