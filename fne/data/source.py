"""The data a command runs on: its `--data` spec and `--image-size`, opened once per process.

    dataset = open_data("~/pets", 32)          # resized to 32x32 (the commands' default)
    dataset = open_data(None, NATIVE)          # the shipped sample at its own size

The commands' default image size is 32: scoring at 64x64 costs 3.0x (DARTS) / 3.5x (NB201) the time of
32x32 with the same ranking (fne/data/DATASETS.md, "Image size"); `--image-size 0` (or `native`) keeps the
files' size. A run directory records `data_record(dataset)`; `data_difference` says why a resumed run's data
is not the data it started on.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_IMAGE_SIZE", "NATIVE", "absolute_spec", "data_difference", "data_record", "input_shape",
           "open_data", "uint8_images"]

import numpy as np
import torch

from fne.config_meta import DEFAULT_IMAGE_SIZE
from fne.data.batches import standardize, target_size
from fne.data.dataset import DATASET_FORMATS, Dataset, OpenOptions
from fne.data.datasets import DEFAULT_SPEC, open_dataset

NATIVE = 0  # --image-size 0 / native: the dataset's own size
# What must match for a run to go on with other data: the content, how it is read and what the network sees.
IDENTITY_KEYS = ("format", "digest", "classes", "image_size_used")
# A run recorded before datasets were recorded ran on CIFAR-10 data (a folder, an .npz or the sample) at 32x32.
LEGACY_FORMATS = ("cifar10", "npz", "sample")


def open_options(image_size: int | None) -> OpenOptions:
    """OpenOptions of a command's --image-size (None or 0: the native size)."""
    return OpenOptions(image_size=image_size or None)


@functools.lru_cache(maxsize=4)
def open_data(data: str | None, image_size: int | None = DEFAULT_IMAGE_SIZE) -> Dataset:
    """The Dataset of a --data spec (None: the shipped sample) read at --image-size, opened once per process."""
    return open_dataset(data if data is not None else DEFAULT_SPEC, open_options(image_size))


def absolute_spec(spec: str | Path | None) -> str | None:
    """A --data spec as config.json stores it: the path absolute (FORMAT: kept), so --resume reads the same data."""
    if spec is None or str(spec) == DEFAULT_SPEC:
        return None if spec is None else DEFAULT_SPEC
    text = str(spec)
    name, sep, rest = text.partition(":")
    if sep and name in DATASET_FORMATS and rest:
        return f"{name}:{Path(rest).expanduser().resolve()}"
    return str(Path(text).expanduser().resolve())


def input_shape(dataset: Dataset) -> tuple[int, int, int]:
    """(channels, H, W) of the networks' input: three channels (the stem's) at the size batches are made at."""
    return (3, *target_size(dataset))


def uint8_images(dataset: Dataset, positions: np.ndarray, split: str = "train",
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 N,H,W,3 images at the batches' size, for the augmentations that crop and flip before normalising."""
    positions = np.asarray(positions, dtype=np.int64)
    images = dataset.read(positions, split)
    size = target_size(dataset)
    if isinstance(images, np.ndarray) and images.ndim == 4 and images.shape[1:3] == size and images.shape[3] == 3:
        return torch.from_numpy(np.ascontiguousarray(images)).to(device)  # CIFAR-sized RGB: the bytes as stored
    # Resize in [0, 255] (no standardisation) and round back to bytes.
    x = standardize(images, (0.0,) * dataset.channels, (1 / 255,) * dataset.channels, size, "cpu")
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().to(device)


def data_record(dataset: Dataset) -> dict[str, Any]:
    """What a run directory or a model file records about its data (Dataset.describe)."""
    return dataset.describe()


def data_difference(recorded: dict[str, Any] | None, dataset: Dataset) -> str | None:
    """Why `dataset` is not the recorded one (format, digest, classes or image size), or None when it is."""
    now = data_record(dataset)
    if recorded is None:  # recorded before fne recorded its data: CIFAR-10 at 32x32
        legacy = dataset.format in LEGACY_FORMATS and dataset.num_classes == 10 and now["image_size_used"] in (
            None, DEFAULT_IMAGE_SIZE) and tuple(dataset.image_size) == (32, 32)
        return None if legacy else f"CIFAR-10 at 32x32 (recorded before datasets were), now {_summary(now)}"
    for key in IDENTITY_KEYS:
        if recorded.get(key) != now[key]:
            return f"{_summary(recorded)}, now {_summary(now)}"
    return None


def _summary(record: dict[str, Any]) -> str:
    classes = record.get("classes") or []
    size = record.get("image_size_used") or "native"
    return (f"{record.get('format')} {record.get('path')} ({len(classes)} classes, image size {size}, "
            f"digest {str(record.get('digest'))[:12]})")
