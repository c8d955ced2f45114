"""fne.memory: freed heap pages go back to the OS (glibc), the finalists release them after every network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fne.data.cifar10 import load_cifar10
from fne.genotopheno.spaces import get_space
from fne.memory import release_freed_memory
from fne.training import finalists
from fne.training.finalists import FinalistConfig, successive_halving


def resident_mib() -> float:
    """This process's resident set in MiB (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def test_freed_memory_pinned_below_live_tensors_goes_back_to_the_os():
    """300 MiB freed under small live tensors stays resident until released (the finalists' pattern)."""
    if not release_freed_memory():
        pytest.skip("this C library has no malloc_trim (not glibc)")
    first = torch.ones(2**17, dtype=torch.float64)
    del first  # glibc raises its mmap threshold above 1 MiB, as a training step's frees do
    chunks, pins = [], []
    for _ in range(300):
        chunks.append(torch.ones(2**17, dtype=torch.float64))  # 1 MiB each, written
        pins.append(torch.ones(4))  # small, long-lived, above each chunk on the heap
    del chunks
    before = resident_mib()
    assert release_freed_memory()
    assert before - resident_mib() > 200, "malloc_trim returned under 200 of the 300 MiB freed"
    assert len(pins) == 300


def test_the_finalists_release_freed_memory_after_every_network_of_every_rung(monkeypatch):
    """One release per finalist per rung, each after that finalist's steps (4 finalists, then 2)."""
    arrays = load_cifar10(None, "train")  # the 1,000 real training images shipped with fne
    images = torch.from_numpy(arrays.images[:64].copy())
    labels = torch.from_numpy(arrays.labels[:64].astype(np.int64))
    steps, releases = [], []
    monkeypatch.setattr(finalists, "release_freed_memory", lambda: releases.append(len(steps)) or True)
    config = FinalistConfig(top=4, rungs=(2, 4), C=2, batch_size=8, lr=0.05, warmup_steps=2, seed=3)
    successive_halving(get_space("nb201"), ["C+CC+kCC", "C+CC+CCC", "k+kk+kkk", "n+nn+nnn"], images, labels,
                       config, on_step=lambda: steps.append(1))
    assert releases == [2, 4, 6, 8, 10, 12]
