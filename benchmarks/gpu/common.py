"""What every section of the GPU check shares: its settings, sizes per mode, timing, data and tables."""

from __future__ import annotations

import inspect
import math
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class Sizes:
    """How large each section runs: the full check on one GPU, or --quick on a CPU in seconds."""

    speed_archs: int = 5  # NB201 architectures timed per score (section 2)
    speed_repeats: int = 5  # interleaved repeats, median kept
    nb201_C: int = 16  # NB201 TinyNetwork width and cells per stage (sections 2-4)
    nb201_layers: int = 5
    batch_size: int = 64  # images per probe
    busy_archs: int = 48  # architectures per back end (section 3)
    busy_workers: tuple[int, ...] = (1, 2, 4)  # dask worker processes on the one GPU
    space_limit: int | None = None  # architectures of the whole space at most (None: all 15,625)
    darts_C: int = 36  # DARTS evaluation network (section 5a)
    darts_layers: int = 20
    throughput_steps: int = 30  # timed training steps per variant
    train_batch: int = 96  # DARTS's training batch
    compare_C: int = 16  # the seeded cell comparison (section 5b)
    compare_layers: int = 8
    train_images: int | None = None  # None: 50,000 - val_images
    val_images: int = 5000
    max_epochs: int | None = None  # None: as many as fit --train-minutes


FULL = Sizes()
QUICK = Sizes(speed_archs=2, speed_repeats=1, nb201_C=4, nb201_layers=1, batch_size=8, busy_archs=4,
              busy_workers=(1,), space_limit=6, darts_C=4, darts_layers=5, throughput_steps=2, train_batch=8,
              compare_C=4, compare_layers=5, train_images=48, val_images=16, max_epochs=1)


@dataclass(frozen=True)
class Check:
    """The resolved options of one gpu_check run."""

    out: Path
    device: str
    quick: bool
    seed: int = 0
    data_dir: str | None = None
    ground_truth: Path | None = None
    budget_minutes: float = 1.5
    train_minutes: float = 3.0
    cell: str | None = None
    run_dir: Path | None = None
    space_cache: Path | None = None
    sizes: Sizes = field(default_factory=Sizes)

    @property
    def cuda(self) -> bool:
        """Whether this run measures a CUDA device."""
        return self.device.startswith("cuda")


@dataclass
class Section:
    """One section's outcome: its Markdown for the README, the CSVs it wrote and how long it took."""

    title: str
    markdown: str = ""
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "ok"


def synchronize(device: str) -> None:
    """Wait for queued CUDA work, so that a wall-clock interval covers it (no-op on the CPU)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: str) -> float:
    """Seconds of fn() including the device work it queued."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def reset_peak(device: str) -> None:
    """Start a new peak-memory window (CUDA only)."""
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: str) -> float:
    """Peak memory allocated by torch since reset_peak, MiB (NaN on the CPU, where torch does not track it)."""
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else math.nan


def real_batch(check: Check, n: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """n class-balanced, seeded real CIFAR-10 training images (normalised NCHW) and their labels."""
    from fne.data.cifar10 import load_cifar10, subset, to_tensor

    return to_tensor(subset(load_cifar10(check.data_dir, "train"), n, check.seed), device)


def with_labels(fn: Callable, labels: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """{"labels": labels} when fn takes labels (the loss-based scores need them), else {}."""
    return {"labels": labels} if labels is not None and "labels" in inspect.signature(fn).parameters else {}


def distinct_genotypes(space, n: int, seed: int, first: Sequence[str] = ()) -> list[str]:
    """`first`, then seeded random distinct genotypes of the space, n in all."""
    rng = np.random.default_rng(seed)
    chosen = dict.fromkeys(space.canonical(g) for g in first)
    while len(chosen) < n:
        chosen[space.sample(rng)] = None
    return list(chosen)[:n]


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table of a DataFrame; floats to `digits` significant figures, NaN as a dash."""
    def cell(value: object) -> str:
        if isinstance(value, float | np.floating):
            return "–" if math.isnan(value) else f"{value:.{digits}g}" if abs(value) < 1e6 else f"{value:.3e}"
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def write_csv(frame: pd.DataFrame, check: Check, name: str) -> Path:
    """Write a section's table to OUT/name and return the path."""
    path = check.out / name
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def environment(check: Check) -> dict[str, str]:
    """What ran the check: versions, device names, commit, CPU count."""
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "CUDA (torch build)": str(torch.version.cuda), "cuDNN": str(torch.backends.cudnn.version()),
            "device": check.device, "CPU cores usable": str(len(os.sched_getaffinity(0))),
            "torch CPU threads": str(torch.get_num_threads())}
    if check.cuda:
        index = torch.device(check.device).index or 0
        props = torch.cuda.get_device_properties(index)
        info["GPU"] = (f"{props.name}, {props.total_memory / 2**30:.1f} GiB, "
                       f"compute capability {props.major}.{props.minor}")
        info["GPUs visible"] = str(torch.cuda.device_count())
        info["TF32 (cuDNN conv / matmul)"] = (f"{torch.backends.cudnn.allow_tf32} / "
                                              f"{torch.backends.cuda.matmul.allow_tf32}")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        info["fne commit"] = commit + (" (with uncommitted changes)" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        info["fne commit"] = "unknown (not a git checkout)"
    return info
