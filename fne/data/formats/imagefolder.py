"""Format `imagefolder`: one subfolder per class of PNG/JPEG files, with train/ and val/ above them or not.

Only the index (fne/data/formats/folder_index.py) is held in memory; a batch decodes the files it draws,
so a folder larger than memory opens in the time of one indexing pass, and in a listing after that.
Grayscale files stay one channel when every file is grayscale, otherwise all are read as RGB.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np

from fne.data.dataset import Dataset, OpenOptions, known_stats, register_format, seeded_split
from fne.data.formats.folder_index import IMAGE_SUFFIXES, TRAIN, UNSPLIT, VAL, folder_index, open_image
from fne.errors import DataError

logger = logging.getLogger(__name__)


class FolderReader:
    """Decodes the image files of each split on demand, as uint8 HWC arrays with a fixed channel count."""

    def __init__(self, root: Path, files: dict[str, np.ndarray], channels: int):
        self.root, self.files, self.channels = root, files, channels

    def read(self, split: str, positions: np.ndarray) -> list[np.ndarray]:
        """The images at these positions of `split`, each at its own size."""
        return [self._decode(self.root / self.files[split][i]) for i in positions]

    def _decode(self, path: Path) -> np.ndarray:
        try:
            with open_image(path, path) as image:  # a file changed since it was indexed may claim more
                pixels = np.array(image.convert("RGB" if self.channels == 3 else "L"))  # writable, for torch
        except (OSError, ValueError) as exc:  # truncated or changed since it was indexed
            raise DataError(f"cannot decode {path} ({type(exc).__name__}: {exc}); expected a PNG or JPEG image") \
                from exc
        return pixels if pixels.ndim == 3 else pixels[..., None]


def looks_like_image_folder(path: Path) -> bool:
    """True for a folder with at least one non-hidden subfolder (the classes, or train/ and val/)."""
    return path.is_dir() and any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())


@register_format("imagefolder", detect=looks_like_image_folder,
                 description=f"one subfolder per class of {'/'.join(IMAGE_SUFFIXES)} files; train/ and val/ optional")
def open_image_folder(path: Path, options: OpenOptions) -> Dataset:
    """Open an image folder: index it (cached), then split it by its train/val folders or a seeded split."""
    index = folder_index(path, options.cache_dir)
    if (index.splits == UNSPLIT).all():
        train, val = seeded_split(index.labels, options.val_fraction, options.seed)
    else:
        train, val = np.flatnonzero(index.splits == TRAIN), np.flatnonzero(index.splits == VAL)
    sizes = Counter(zip(index.heights[train].tolist(), index.widths[train].tolist()))
    # The most common size is the native one; ties go to the larger area so nothing is upscaled by default.
    size = max(sizes.items(), key=lambda item: (item[1], item[0][0] * item[0][1]))[0]
    channels = 3 if (index.channels == 3).any() else 1
    reader = FolderReader(Path(index.root), {"train": index.files[train], "val": index.files[val]}, channels)
    return Dataset("imagefolder", index.root, index.classes, size, channels, index.digest,
                   index.labels[train], index.labels[val], reader, options,
                   fixed_stats=known_stats(index.classes, size, channels))
