"""The export summary's latency: PyTorch and onnxruntime on this machine, at batch 1 and at batch 64.

Both runtimes are timed with the same timer (timing.py: torch.utils.benchmark's blocked autorange, median)
at the same thread count, on the same CPU, on seeded random inputs of the network's input size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from fne.deploy.onnx_export import INPUT_NAME, OUTPUT_NAME
from fne.deploy.timing import clock_name, inference_call, median_ms

LATENCY_BATCH, THROUGHPUT_BATCH = 1, 64


@dataclass(frozen=True)
class RuntimeLatency:
    """One runtime's figures: median ms per image at batch 1 and images per second at batch 64."""

    runtime: str
    ms_per_image: float
    images_per_second: float


def _figures(runtime: str, make_call: Callable[[torch.Tensor], Callable[[], object]], size: tuple[int, int],
             clock: str, min_run_time: float) -> RuntimeLatency:
    generator = torch.Generator().manual_seed(0)
    single, batch = (torch.randn(n, 3, *size, generator=generator) for n in (LATENCY_BATCH, THROUGHPUT_BATCH))
    latency = median_ms(make_call(single), min_run_time, clock).median_ms
    throughput = median_ms(make_call(batch), min_run_time, clock).median_ms
    return RuntimeLatency(runtime, latency, THROUGHPUT_BATCH * 1e3 / throughput)


def runtime_latencies(model: nn.Module, onnx_session: Any, size: tuple[int, int],
                      min_run_time: float = 0.5) -> tuple[list[RuntimeLatency], str]:
    """PyTorch's and onnxruntime's figures for the network on this CPU, and the clock that timed them."""
    model = model.eval().to("cpu")
    clock = clock_name(torch.device("cpu"))

    def torch_call(x: torch.Tensor) -> Callable[[], object]:
        return inference_call(model, [x])

    def onnx_call(x: torch.Tensor) -> Callable[[], object]:
        feed = {INPUT_NAME: x.numpy()}
        return lambda: onnx_session.run([OUTPUT_NAME], feed)

    return [_figures("PyTorch", torch_call, size, clock, min_run_time),
            _figures("onnxruntime", onnx_call, size, clock, min_run_time)], clock
