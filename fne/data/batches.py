"""Tensors from a Dataset: the heuristics' probe batch and training batches, standardised and resized.

The probe batch draws the same class-balanced, seeded positions as fne.data.cifar10.subset and applies the
same arithmetic as fne.data.cifar10.normalize, so on CIFAR-10 (the folder, the sample, save_arrays files)
it is bit for bit the batch fne has always scored with. Other data are standardised by their own measured
statistics; grayscale becomes three equal channels (the networks' stem takes RGB), and images are resized
with torch only: area averaging to shrink, bilinear to grow.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from fne.data.dataset import Dataset
from fne.errors import DataError

logger = logging.getLogger(__name__)


def probe_positions(labels: np.ndarray, num_classes: int, n: int, seed: int,
                    classes: Sequence[str] = (), source: str = "dataset") -> np.ndarray:
    """Sorted positions of n images, class-balanced to within one, drawn exactly as cifar10.subset draws them."""
    rng = np.random.default_rng(seed)
    pools = [np.flatnonzero(labels == c) for c in range(num_classes)]
    quota = np.full(num_classes, n // num_classes)
    quota[rng.choice(num_classes, n % num_classes, replace=False)] += 1  # who gets the remainder is seeded
    short = [c for c in range(num_classes) if len(pools[c]) < quota[c]]
    if short:
        name = classes[short[0]] if classes else short[0]
        raise DataError(f"{source}: class {name!r} has {len(pools[short[0]])} training images; a class-balanced "
                        f"probe batch of {n} needs {quota[short[0]]} of it")
    return np.sort(np.concatenate([rng.choice(p, q, replace=False) for p, q in zip(pools, quota)]))


def target_size(dataset: Dataset) -> tuple[int, int]:
    """The (H, W) batches are made at: options.image_size squared, else the dataset's native size."""
    size = dataset.options.image_size
    return (size, size) if size is not None else tuple(dataset.image_size)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    # Area averaging is the exact box filter when shrinking by an integer factor (64 -> 32); bilinear grows.
    shrink = x.shape[-2] >= size[0] and x.shape[-1] >= size[1]
    return F.interpolate(x, size=size, mode="area") if shrink else \
        F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def standardize(images: np.ndarray | Sequence[np.ndarray], mean: Sequence[float], std: Sequence[float],
                size: tuple[int, int], device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 HWC images (an N,H,W,C array or a list of any sizes) -> float32 N,3,H,W, resized and standardised."""
    device = torch.device(device)
    if isinstance(images, np.ndarray):
        # Move uint8 first (a quarter of float32's bytes), then the arithmetic of cifar10.normalize, in its order.
        batch = [torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).to(torch.float32)]
    else:
        batch = [torch.from_numpy(np.ascontiguousarray(i)).to(device).permute(2, 0, 1)[None].to(torch.float32)
                 for i in images]
    resized = [_resize(b.div_(255.0), size) for b in batch]
    x = torch.cat(resized) if len(resized) > 1 else resized[0]
    channels = x.shape[1]
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, channels, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, channels, 1, 1)
    x = x.sub_(mean_t).div_(std_t)
    return (x.expand(-1, 3, -1, -1) if channels == 1 else x).contiguous()


def _notices(dataset: Dataset, size: tuple[int, int], images: np.ndarray | Sequence[np.ndarray]) -> None:
    """One log line for each way the batch differs from the files: channels, aspect ratio, mixed sizes."""
    if dataset.channels == 1:
        logger.info("%s: grayscale images repeated to 3 channels for the RGB stem", dataset.path)
    height, width = dataset.image_size
    if height != width and size[0] == size[1]:
        logger.info("%s: %dx%d images resized to %dx%d (aspect ratio not kept)", dataset.path, height, width, *size)
    if not isinstance(images, np.ndarray) and len({i.shape[:2] for i in images}) > 1:
        logger.info("%s: images of several sizes resized to %dx%d", dataset.path, *size)


def to_tensors(dataset: Dataset, positions: Sequence[int] | np.ndarray, split: str = "train",
               device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(x float32 N,3,H,W standardised at target_size, y int64 N) of the images at these positions of `split`."""
    positions = np.asarray(positions, dtype=np.int64)
    images = dataset.read(positions, split)
    size = target_size(dataset)
    _notices(dataset, size, images)
    mean, std = dataset.stats
    x = standardize(images, mean, std, size, device)
    return x, torch.from_numpy(dataset.labels(split)[positions].copy()).to(device)


def probe_batch(dataset: Dataset, n: int, seed: int,
                device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of n class-balanced, seeded training images: the input of the training-free heuristics."""
    labels = dataset.train_labels
    if n > len(labels):
        raise DataError(f"{dataset.path}: {len(labels)} training images, fewer than one probe batch of {n}; "
                        "expected at least as many images as the batch size")
    positions = probe_positions(labels, dataset.num_classes, n, seed, dataset.classes, dataset.path)
    return to_tensors(dataset, positions, "train", device)
