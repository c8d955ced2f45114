"""A dataset as one frozen record: what it is (format, classes, image size, statistics) and how to read it.

Formats (one module each under fne/data/formats/) register an opener with `register_format(name,
detect=...)`; `fne.data.datasets.open_dataset` picks one and returns a `Dataset`. The record holds labels
and an image reader, never all the pixels, so a folder larger than memory opens in the time it takes to
index it; images are read by position when a batch draws them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fne.atomic import atomic_write
from fne.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD, train_val_split
from fne.errors import ConfigError, DataError
from fne.registry import Registry

logger = logging.getLogger(__name__)

SPLITS = ("train", "val")


@dataclass(frozen=True)
class OpenOptions:
    """How to open a dataset: target image size, validation split, seed, statistics sample and cache folder."""

    image_size: int | None = None  # resize probe/training images to this square size; None keeps the native size
    val_fraction: float = 0.1  # held-out share when the data has no train/val split of its own (0: none)
    seed: int = 0  # seeds the train/val split and the statistics sample
    stats_images: int = 2000  # training images sampled for the per-channel mean/std
    cache_dir: str | None = None  # None: $FNE_CACHE_DIR, else $XDG_CACHE_HOME/fne, else ~/.cache/fne

    def __post_init__(self) -> None:
        if self.image_size is not None and not 4 <= self.image_size <= 4096:
            raise ConfigError(f"image_size={self.image_size}: expected None or a size in 4..4096 pixels")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction={self.val_fraction}: expected a fraction in [0, 1)")
        if self.stats_images < 1:
            raise ConfigError(f"stats_images={self.stats_images}: expected a positive count")


class ImageReader(Protocol):
    """Reads images of one split by position: a list (or an N,H,W,C array) of uint8 HWC arrays."""

    def read(self, split: str, positions: np.ndarray) -> Sequence[np.ndarray]: ...


class ArrayReader:
    """An ImageReader over in-memory (or memory-mapped) uint8 NHWC arrays, one per split."""

    def __init__(self, train: np.ndarray, val: np.ndarray):
        self.arrays = {"train": train, "val": val}

    def read(self, split: str, positions: np.ndarray) -> np.ndarray:
        """The images at these positions of `split`, as one N,H,W,C array."""
        return self.arrays[split][np.asarray(positions, dtype=np.int64)]


@dataclass(frozen=True, eq=False)
class Dataset:
    """An image-classification dataset: labels of both splits, a lazy image reader, and its statistics."""

    format: str
    path: str
    classes: tuple[str, ...]
    image_size: tuple[int, int]  # native (H, W): the most common size among the training images
    channels: int  # 1 (grayscale) or 3 (RGB)
    digest: str  # hex digest of the content (pixels and labels), the same for the same data wherever it lies
    train_labels: np.ndarray = field(repr=False)
    val_labels: np.ndarray = field(repr=False)
    reader: ImageReader = field(repr=False)
    options: OpenOptions = field(default_factory=OpenOptions, repr=False)
    # Fixed (mean, std) per channel, for formats whose published constants must stay (CIFAR-10).
    fixed_stats: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def __post_init__(self) -> None:
        if len(self.classes) < 2:
            raise DataError(f"{self.path}: found {len(self.classes)} class ({', '.join(self.classes)}); "
                            "expected at least 2 classes to classify")
        for split, labels in zip(SPLITS, (self.train_labels, self.val_labels)):
            labels = np.asarray(labels)
            if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
                raise DataError(f"{self.path}: {split} labels span {labels.min()}..{labels.max()}; expected "
                                f"0..{len(self.classes) - 1} for {len(self.classes)} classes")
            object.__setattr__(self, f"{split}_labels", labels.astype(np.int64, copy=False))
        if not len(self.train_labels):
            raise DataError(f"{self.path}: no training images")

    @property
    def num_classes(self) -> int:
        """Number of classes (the network's output width)."""
        return len(self.classes)

    @property
    def train_size(self) -> int:
        """Number of training images."""
        return len(self.train_labels)

    @property
    def val_size(self) -> int:
        """Number of held-out images."""
        return len(self.val_labels)

    def labels(self, split: str = "train") -> np.ndarray:
        """The labels of a split ("train" or "val")."""
        if split not in SPLITS:
            raise ConfigError(f"split={split!r}: expected one of {SPLITS}")
        return self.train_labels if split == "train" else self.val_labels

    def read(self, positions: Sequence[int] | np.ndarray, split: str = "train") -> Sequence[np.ndarray]:
        """uint8 HWC images at these positions of `split`, read now (native size and channels)."""
        positions = np.asarray(positions, dtype=np.int64)
        n = len(self.labels(split))
        if len(positions) and (positions.min() < 0 or positions.max() >= n):
            raise ConfigError(f"positions span {positions.min()}..{positions.max()}: {split} has {n} images")
        return self.reader.read(split, positions)

    @cached_property
    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel (mean, std) of pixels in [0, 1]: fixed constants, or measured on a seeded sample, cached."""
        if self.fixed_stats is not None:
            return self.fixed_stats
        return cached_json(f"stats-{self.digest}-{self.options.stats_images}-{self.options.seed}",
                           lambda: measure_stats(self, self.options.stats_images, self.options.seed),
                           self.options.cache_dir, decode=lambda v: (tuple(v[0]), tuple(v[1])))

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary for run directories: format, path, classes, sizes, digest and statistics."""
        mean, std = self.stats
        return {"format": self.format, "path": self.path, "classes": list(self.classes),
                "num_classes": self.num_classes, "image_size": list(self.image_size), "channels": self.channels,
                "image_size_used": self.options.image_size, "train_images": self.train_size,
                "val_images": self.val_size, "digest": self.digest, "mean": list(mean), "std": list(std)}


def measure_stats(dataset: Dataset, count: int, seed: int, chunk: int = 256) -> tuple[tuple, tuple]:
    """Per-channel mean and (population) std of pixels/255 over `count` seeded training images (all if fewer)."""
    n = dataset.train_size
    positions = np.sort(np.random.default_rng(seed).choice(n, min(count, n), replace=False))
    total = np.zeros(dataset.channels)
    squares = np.zeros(dataset.channels)
    pixels = 0
    for start in range(0, len(positions), chunk):  # chunks bound memory for large images
        for image in dataset.read(positions[start:start + chunk]):
            flat = np.asarray(image, dtype=np.float64).reshape(-1, image.shape[-1]) / 255.0
            total += flat.sum(axis=0)
            squares += np.square(flat).sum(axis=0)
            pixels += len(flat)
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - np.square(mean), 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


# ---------------------------------------------------------------- cache folder
def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """fne's cache folder: cache_dir, else $FNE_CACHE_DIR, else $XDG_CACHE_HOME/fne, else ~/.cache/fne."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("FNE_CACHE_DIR"):
        return Path(os.environ["FNE_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "fne"


def cache_key(*parts: object) -> str:
    """A short hex key of these parts (paths, sizes, mtimes...)."""
    return hashlib.blake2b(json.dumps([str(p) for p in parts]).encode(), digest_size=16).hexdigest()


def cached_json(name: str, compute: Callable[[], Any], cache_dir: str | None,
                decode: Callable[[Any], Any] = lambda v: v) -> Any:
    """compute(), stored as JSON under the cache folder as `name`.json and read back next time."""
    path = cache_root(cache_dir) / "datasets" / f"{name}.json"
    if path.is_file():
        try:
            return decode(json.loads(path.read_text()))
        except (OSError, ValueError, TypeError, IndexError) as exc:  # a damaged entry is recomputed, not fatal
            logger.info("ignoring unreadable cache entry %s (%s)", path, exc)
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda stream: stream.write(json.dumps(value).encode()))
    except OSError as exc:  # a read-only cache only costs the recomputation next time
        logger.info("could not cache %s (%s)", path, exc)
    return decode(value)


# ---------------------------------------------------------------- formats
# name -> opener(path: Path, options: OpenOptions) -> Dataset; meta "detect": Path -> bool
DATASET_FORMATS: Registry[Callable[[Path, OpenOptions], Dataset]] = Registry("dataset format")


def register_format(name: str, *, detect: Callable[[Path], bool] | None = None, description: str = ""):
    """Decorator: register an opener `(path, options) -> Dataset` as format `name`; duplicates are refused."""
    return DATASET_FORMATS.register(name, detect=detect, description=description)


CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def known_stats(classes: Sequence[str], image_size: Sequence[int],
                channels: int) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """CIFAR-10's published (mean, std) for CIFAR-10's ten classes at 32x32 RGB in any format, else None."""
    # Whatever the container (batches folder, .npz, folder of PNGs), CIFAR-10 keeps the constants fne has always
    # standardised with, so its probe batches do not change with the format it is stored in.
    if tuple(classes) == CIFAR10_CLASSES and tuple(image_size) == (32, 32) and channels == 3:
        return CIFAR10_MEAN, CIFAR10_STD
    return None


def seeded_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) positions, stratified by class and seeded; all train when val_fraction rounds to 0."""
    n = len(labels)
    if round(val_fraction * n) == 0:
        return np.arange(n, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return train_val_split(np.asarray(labels), float(val_fraction), seed)


def array_digest(*arrays: np.ndarray, names: Sequence[str] = ()) -> str:
    """Hex blake2b of arrays' shapes, dtypes and bytes, and of the class names."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    digest.update(json.dumps(list(names)).encode())
    return digest.hexdigest()
