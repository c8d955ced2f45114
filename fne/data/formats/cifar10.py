"""Format `cifar10`: the official `cifar-10-batches-py` folder (5 training batches, test_batch, batches.meta).

The test batch is the held-out split. Statistics stay the published CIFAR-10 constants, so probe batches
are exactly those fne has always drawn.
"""

from __future__ import annotations

from pathlib import Path

from fne.data.cifar10 import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    FOLDER_NAME,
    META_FILE,
    TEST_FILES,
    TRAIN_FILES,
    find_cifar10_dir,
    load_cifar10,
)
from fne.data.dataset import ArrayReader, Dataset, OpenOptions, array_digest, register_format


def looks_like_cifar10(path: Path) -> bool:
    """True for a folder holding (or whose cifar-10-batches-py child holds) any CIFAR-10 batch file."""
    return path.is_dir() and any((folder / name).is_file() for folder in (path, path / FOLDER_NAME)
                                 for name in (META_FILE, *TRAIN_FILES, *TEST_FILES))


@register_format("cifar10", detect=looks_like_cifar10, description="cifar-10-batches-py folder (python pickles)")
def open_cifar10(path: Path, options: OpenOptions) -> Dataset:
    """Open a CIFAR-10 batches folder; a missing batch is a DataError naming it."""
    folder = find_cifar10_dir(path)
    train, test = load_cifar10(folder, "train"), load_cifar10(folder, "test")
    return Dataset("cifar10", str(folder), train.classes, (32, 32), 3,
                   array_digest(train.images, train.labels, test.images, test.labels, names=train.classes),
                   train.labels, test.labels, ArrayReader(train.images, test.images), options,
                   fixed_stats=(CIFAR10_MEAN, CIFAR10_STD))
