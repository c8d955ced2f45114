"""The index of an image folder: one row per file (path, label, split, size, channels), built once and cached.

Indexing reads each file once, to hash its bytes (the content digest) and to parse its header (size and
mode); pixels are decoded later, only for the images a batch draws. The index is cached under fne's cache
folder, keyed by the folder's path and every file's size and mtime, so a changed, added or removed file
rebuilds it.

An image whose header claims more than `pixel_limit()` pixels (PIL's default, 89,478,485: a decompression
bomb is a small file claiming 40,000 x 40,000) is refused before it is decoded; FNE_MAX_IMAGE_PIXELS admits
larger ones (a number of pixels, or 0 for no limit).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from fne.atomic import atomic_write
from fne.data.dataset import cache_key, cache_root
from fne.errors import DataError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
UNSPLIT, TRAIN, VAL = -1, 0, 1
_GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")  # modes fne reads as one channel; every other mode as RGB
PIXEL_LIMIT_ENV = "FNE_MAX_IMAGE_PIXELS"
DEFAULT_PIXEL_LIMIT = 89_478_485  # PIL's Image.MAX_IMAGE_PIXELS as shipped (about 0.25 GiB of 24-bit pixels)


@dataclass(frozen=True, eq=False)
class FolderIndex:
    """Every image of a folder: relative path, label, split code (-1 unsplit, 0 train, 1 val), H, W, channels."""

    root: str
    classes: tuple[str, ...]
    files: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    heights: np.ndarray
    widths: np.ndarray
    channels: np.ndarray
    digest: str


def _class_folders(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _not_a_file(entry: os.DirEntry) -> DataError:
    """What a class folder's entry that is no regular file is, as the error that names it."""
    if entry.is_symlink() and not os.path.exists(entry.path):
        return DataError(f"{entry.path} is a broken symbolic link (to {os.readlink(entry.path)}, which does not "
                         "exist); expected PNG/JPEG files only")
    if entry.is_dir():
        return DataError(f"{entry.path} is a folder inside a class folder; expected PNG/JPEG files only")
    return DataError(f"{entry.path} is not a regular file (a device, socket or pipe); expected PNG/JPEG files only")


def _files(folder: Path) -> list[os.DirEntry]:
    entries = sorted((e for e in os.scandir(folder) if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in entries:
        if not entry.is_file():
            raise _not_a_file(entry)
        if not entry.name.lower().endswith(IMAGE_SUFFIXES):
            raise DataError(f"{entry.path} is not an image; expected PNG or JPEG files "
                            f"({', '.join(IMAGE_SUFFIXES)}) in each class folder")
    if not entries:
        raise DataError(f"class folder {folder} holds no images; expected at least one PNG or JPEG file")
    return entries


def list_folder(root: Path) -> tuple[tuple[str, ...], list[tuple[str, int, int, int, int]]]:
    """(classes, rows of (relative path, label, split code, bytes, mtime ns)), sorted by split, class, name."""
    split_layout = (root / "train").is_dir() and (root / "val").is_dir()
    tops = [("train", TRAIN), ("val", VAL)] if split_layout else [("", UNSPLIT)]
    classes = tuple(_class_folders(root / tops[0][0]))
    if not classes:
        raise DataError(f"{root} has no class folders; expected one subfolder per class holding PNG/JPEG images "
                        "(optionally under train/ and val/)")
    rows = []
    for top, code in tops:
        found = _class_folders(root / top)
        unknown = sorted(set(found) - set(classes))
        if unknown:
            raise DataError(f"{root / top / unknown[0]} is a class folder not in {root / 'train'}; expected the "
                            f"classes {', '.join(classes)}")
        for label, name in enumerate(classes):
            if top == "val" and name not in found:
                continue  # a class with no held-out images is allowed; one with no training images is not
            for entry in _files(root / top / name):
                stat = entry.stat()
                rows.append((os.path.join(top, name, entry.name) if top else os.path.join(name, entry.name),
                             label, code, stat.st_size, stat.st_mtime_ns))
    return classes, rows


def pixel_limit() -> int | None:
    """The most pixels an image may claim: FNE_MAX_IMAGE_PIXELS (0: no limit), else PIL's default; DataError if bad."""
    text = os.environ.get(PIXEL_LIMIT_ENV, "").strip().replace("_", "").replace(",", "")
    if not text:
        return DEFAULT_PIXEL_LIMIT
    if not text.isdigit():
        raise DataError(f"{PIXEL_LIMIT_ENV}={os.environ[PIXEL_LIMIT_ENV]!r}: expected a number of pixels (0: no limit)")
    return int(text) or None


def open_image(source, path: Path) -> Image.Image:
    """PIL's lazy Image.open of `source` (a path or bytes stream) after checking the pixels its header claims."""
    limit = pixel_limit()
    # PIL reads its limit from a module global at every open: set it to fne's (it warns above it, and refuses
    # twice it); the warning is replaced by the DataError below, which names the file and the way out.
    Image.MAX_IMAGE_PIXELS = limit
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source)
    except Image.DecompressionBombError:
        image = None
    if image is None or (limit is not None and image.size[0] * image.size[1] > limit):
        claimed = "" if image is None else f"{image.size[0]} x {image.size[1]} = {image.size[0] * image.size[1]:,} "
        if image is not None:
            image.close()
        raise DataError(f"{path} claims {claimed}pixels beyond the limit of {limit:,} (a decompression bomb?); set "
                        f"{PIXEL_LIMIT_ENV} to a larger number of pixels (0: no limit) to admit large images")
    return image


def read_header(path: Path) -> tuple[int, int, int, bytes]:
    """(height, width, channels, blake2b of the bytes) of one image file; DataError if it is not an image."""
    data = path.read_bytes()
    try:
        with open_image(io.BytesIO(data), path) as image:
            width, height = image.size
            channels = 1 if image.mode in _GRAY_MODES else 3
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable image ({type(exc).__name__}: {exc}); expected PNG or JPEG") \
            from exc
    return height, width, channels, hashlib.blake2b(data, digest_size=16).digest()


def build_index(root: Path, classes: tuple[str, ...], rows: list) -> FolderIndex:
    """Read every file's header and bytes once: sizes, channels and the content digest of the folder."""
    n = len(rows)
    heights, widths = np.zeros(n, np.int32), np.zeros(n, np.int32)
    channels = np.zeros(n, np.int8)
    digest = hashlib.blake2b(repr(classes).encode(), digest_size=16)
    for i, (relative, label, code, _, _) in enumerate(tqdm(rows, desc=f"indexing {root.name}", unit="image",
                                                           disable=None, leave=False)):
        heights[i], widths[i], channels[i], file_digest = read_header(root / relative)
        digest.update(f"{relative}\0{label}\0{code}\0".encode())
        digest.update(file_digest)
    return FolderIndex(str(root), classes, np.array([r[0] for r in rows], dtype=str),
                       np.array([r[1] for r in rows], np.int64), np.array([r[2] for r in rows], np.int8),
                       heights, widths, channels, digest.hexdigest())


def _save(path: Path, index: FolderIndex) -> None:
    arrays = {k: getattr(index, k) for k in ("files", "labels", "splits", "heights", "widths", "channels")}
    atomic_write(path, lambda stream: np.savez(stream, classes=np.array(index.classes, dtype=str),
                                               digest=np.array(index.digest), **arrays))


def _load(path: Path, root: Path) -> FolderIndex:
    with np.load(path, allow_pickle=False) as npz:
        return FolderIndex(str(root), tuple(npz["classes"].tolist()), npz["files"], npz["labels"], npz["splits"],
                           npz["heights"], npz["widths"], npz["channels"], str(npz["digest"]))


def folder_index(root: Path, cache_dir: str | None = None) -> FolderIndex:
    """The index of an image folder, from the cache when no file changed since it was built."""
    root = root.resolve()
    classes, rows = list_folder(root)
    key = cache_key(root, classes, [(r[0], r[1], r[2], r[3], r[4]) for r in rows])
    path = cache_root(cache_dir) / "datasets" / f"index-{key}.npz"
    if path.is_file():
        try:
            return _load(path, root)
        except (OSError, ValueError, KeyError) as exc:  # a damaged cache entry is rebuilt, not fatal
            logger.info("rebuilding unreadable folder index %s (%s)", path, exc)
    logger.info("indexing %d images in %s", len(rows), root)
    index = build_index(root, classes, rows)
    try:
        _save(path, index)
    except OSError as exc:  # a read-only cache only costs the indexing next time
        logger.info("could not cache the folder index at %s (%s)", path, exc)
    return index
