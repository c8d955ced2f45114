"""Format `cifar100`: the official `cifar-100-python` folder (train, test, meta pickles), fine labels.

Read with the same numpy-only unpickler as CIFAR-10, so a foreign folder cannot run code. The test file is
the held-out split; statistics are measured (fne has no published constants to keep for CIFAR-100).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from fne.data.cifar_pickle import read_pickle
from fne.data.dataset import ArrayReader, Dataset, OpenOptions, array_digest, register_format
from fne.errors import DataError

FOLDER_NAME = "cifar-100-python"
FILES = ("train", "test", "meta")
_LAYOUT = f"{FOLDER_NAME}/ with the pickles train, test and meta"


def _folder(path: Path) -> Path | None:
    for folder in (path / FOLDER_NAME, path):
        if folder.is_dir() and (folder / "meta").is_file() and (folder / "train").is_file():
            return folder
    return None


def looks_like_cifar100(path: Path) -> bool:
    """True for a folder holding (or whose cifar-100-python child holds) the meta and train pickles."""
    return path.is_dir() and _folder(path) is not None


def _read(path: Path) -> dict:
    return read_pickle(path, "CIFAR-100", _LAYOUT, _LAYOUT)


def _read_split(path: Path, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = _read(path)
    data, labels = batch.get("data"), batch.get("fine_labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
            or labels is None:
        raise DataError(f"corrupt CIFAR-100 file {path}: expected 'data' uint8 (N, 3072) and 'fine_labels'")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (len(data),) or labels.min() < 0 or labels.max() >= n_classes:
        raise DataError(f"corrupt CIFAR-100 file {path}: expected {len(data)} fine labels in 0..{n_classes - 1}")
    # Rows are R, G, B planes of 32x32, as in CIFAR-10.
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), labels


@register_format("cifar100", detect=looks_like_cifar100, description="cifar-100-python folder, fine labels")
def open_cifar100(path: Path, options: OpenOptions) -> Dataset:
    """Open a CIFAR-100 python folder with its 100 fine classes."""
    folder = _folder(path) or path
    names = _read(folder / "meta").get("fine_label_names")
    if not isinstance(names, list) or not names:
        raise DataError(f"corrupt CIFAR-100 file {folder / 'meta'}: expected 'fine_label_names', a list of names")
    classes = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
    train_images, train_labels = _read_split(folder / "train", len(classes))
    test_images, test_labels = _read_split(folder / "test", len(classes))
    return Dataset("cifar100", str(folder), classes, (32, 32), 3,
                   array_digest(train_images, train_labels, test_images, test_labels, names=classes),
                   train_labels, test_labels, ArrayReader(train_images, test_images), options)


def write_cifar100(folder: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
                   classes: list[str]) -> Path:
    """Write (images NHWC, fine labels) pairs in the official pickle layout (for tests and conversions)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in (("train", train), ("test", test)):
        rows = np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))
        with (folder / name).open("wb") as f:
            pickle.dump({"data": rows, "fine_labels": [int(x) for x in labels],
                         "coarse_labels": [0] * len(labels)}, f)
    with (folder / "meta").open("wb") as f:
        pickle.dump({"fine_label_names": list(classes), "coarse_label_names": ["all"]}, f)
    return folder
