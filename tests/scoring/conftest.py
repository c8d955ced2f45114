"""Shared fixture of the scoring tests: real CIFAR-10 images with their labels."""

from __future__ import annotations

import pytest
import torch

from fne.data.cifar10 import heuristic_labelled_batch


@pytest.fixture(scope="session")
def labelled() -> tuple[torch.Tensor, torch.Tensor]:
    """8 real CIFAR-10 training images (shipped with fne) and their labels."""
    return heuristic_labelled_batch(None, 8, seed=0)
