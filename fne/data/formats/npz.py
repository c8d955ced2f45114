"""Formats `npz` and `sample`: arrays in a numpy .npz, and the 1,000 CIFAR-10 images shipped with fne.

An .npz holds uint8 `images` (or `x`), N,H,W,C or N,H,W (grayscale), and integer `labels` (or `y`), with
optional `class_names` (or `classes`). Files written by fne.data.cifar10.save_arrays carry a `split` key:
they are one split already, so all their images are training images, as fne has always read them; other
files are split by OpenOptions.val_fraction. Arrays named for CIFAR-10's classes at 32x32x3 keep its
published statistics (dataset.known_stats), so their probe batches are the ones fne has always drawn.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fne.data.cifar10 import SAMPLE_PATH
from fne.data.dataset import (
    ArrayReader,
    Dataset,
    OpenOptions,
    array_digest,
    known_stats,
    register_format,
    seeded_split,
)
from fne.errors import DataError

_EXPECTED = "uint8 'images' (N,H,W,C or N,H,W) and integer 'labels', optional 'class_names'"


def _pick(npz: np.lib.npyio.NpzFile, names: tuple[str, ...]) -> np.ndarray | None:
    return next((npz[name] for name in names if name in npz.files), None)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, bool]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = _pick(npz, ("images", "x")), _pick(npz, ("labels", "y"))
            names, presplit = _pick(npz, ("class_names", "classes")), "split" in npz.files
    except Exception as exc:  # a truncated or foreign file
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}; expected an .npz with {_EXPECTED}") from exc
    if images is None or labels is None:
        raise DataError(f"{path}: missing arrays; expected {_EXPECTED}")
    return images, labels, names, presplit


def _checked(path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim == 3:
        images = images[..., None]  # N,H,W grayscale -> one channel
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{path}: images are {images.dtype} {images.shape}; expected {_EXPECTED}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(images),):
        raise DataError(f"{path}: labels are {labels.dtype} {labels.shape}; expected {len(images)} integer labels")
    if len(labels) and labels.min() < 0:
        raise DataError(f"{path}: labels span {labels.min()}..{labels.max()}; expected labels from 0")
    return images, labels.astype(np.int64)


def open_arrays(path: Path, options: OpenOptions, format_name: str = "npz") -> Dataset:
    """Open an .npz of images and labels as a Dataset (format `format_name`)."""
    images, labels, names, presplit = _load(path)
    images, labels = _checked(path, images, labels)
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    classes = tuple(str(c) for c in names.tolist()) if names is not None else tuple(map(str, range(n_classes)))
    train, val = (np.arange(len(labels)), np.zeros(0, np.int64)) if presplit else \
        seeded_split(labels, options.val_fraction, options.seed)
    # Fancy indexing copies; a file with no held-out split keeps its one array.
    reader = ArrayReader(images if presplit else images[train], images[val])
    return Dataset(format_name, str(path), classes, images.shape[1:3], images.shape[3],
                   array_digest(images, labels, names=classes), labels[train], labels[val], reader, options,
                   fixed_stats=known_stats(classes, images.shape[1:3], images.shape[3]))


def looks_like_npz(path: Path) -> bool:
    """True for a file named *.npz."""
    return path.suffix.lower() == ".npz" and path.is_file()


@register_format("npz", detect=looks_like_npz, description=".npz with images/x, labels/y, optional class_names")
def open_npz(path: Path, options: OpenOptions) -> Dataset:
    """Open an .npz of uint8 images and integer labels."""
    return open_arrays(path, options)


@register_format("sample", description="the 1,000 CIFAR-10 training images shipped with fne (the default)")
def open_sample(path: Path | None, options: OpenOptions) -> Dataset:
    """Open the shipped CIFAR-10 sample (path is ignored)."""
    return open_arrays(SAMPLE_PATH, options, "sample")
