"""Small datasets written in tmp_path for the dataset-layer tests: image folders, .npz files, CIFAR pickles."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from fne.data.cifar10 import SAMPLE_PATH


def sample_arrays() -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(images, labels, classes) of the shipped CIFAR-10 sample, in its stored order."""
    with np.load(SAMPLE_PATH) as npz:
        return npz["images"], npz["labels"], tuple(npz["classes"].tolist())


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> Path:
    """One PNG per image, named by its position, in one subfolder per class."""
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(images, labels)):
        pixels = image[..., 0] if image.shape[-1] == 1 else image
        Image.fromarray(pixels).save(root / classes[label] / f"{i:05d}.png")
    return root


def class_major(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The images in an image folder's order: by class, then by position (file name)."""
    order = np.argsort(labels, kind="stable")
    return images[order], labels[order]


def synthetic(n: int = 60, size: tuple[int, int] = (8, 8), channels: int = 3, classes: int = 3,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images and balanced labels (a test input, not a benchmark)."""
    rng = np.random.default_rng(seed)
    shape = (n, *size) if channels == 1 else (n, *size, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8), np.arange(n) % classes


def write_cifar10(folder: Path, per_batch: int = 10, batches: tuple[int, ...] = (1, 2, 3, 4, 5)) -> Path:
    """A tiny CIFAR-10 batches folder in the official pickle layout (images from the sample)."""
    images, labels, classes = sample_arrays()
    folder.mkdir(parents=True, exist_ok=True)
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    names = [f"data_batch_{b}" for b in batches] + ["test_batch"]
    for k, name in enumerate(names):
        part = slice(k * per_batch, (k + 1) * per_batch)
        with (folder / name).open("wb") as f:
            pickle.dump({"data": np.ascontiguousarray(rows[part]), "labels": labels[part].tolist()}, f)
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({"label_names": list(classes)}, f)
    return folder
