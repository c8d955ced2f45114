"""CIFAR-10 as arrays and device tensors: loading, balanced subsets, held-out splits, batches, download.

Reads the official `cifar-10-batches-py` pickles (Krizhevsky 2009, cs.toronto.edu/~kriz/cifar.html) with
plain pickle, restricted to the numpy globals those files use, so a foreign folder cannot run code.
`data_dir=None` means the 1,000 real training images shipped in `fne/data/cifar10_sample.npz`
(see PROVENANCE.md there), so nothing needs a download.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from tqdm import tqdm

from fne.data.cifar_pickle import read_pickle
from fne.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
SAMPLE_PATH = Path(__file__).resolve().parent / "cifar10_sample.npz"
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
# Per-channel statistics of the CIFAR-10 training set (the values DARTS's utils.py uses).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGE_SHAPE = (32, 32, 3)
_ROW_BYTES = 3072
_LAYOUT = f"{FOLDER_NAME}/ with {', '.join(TRAIN_FILES)}, {TEST_FILES[0]} and {META_FILE}"

@dataclass(frozen=True, eq=False)
class CifarArrays:
    """Images (N,32,32,3) uint8 HWC, labels (N,) int64, class names, and each image's index in its source split."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    indices: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        indices = np.asarray(self.indices)
        n = len(images)
        if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
            raise DataError(f"{self.source or 'images'}: expected uint8 images of shape (N, 32, 32, 3), "
                            f"got {images.dtype} {images.shape}")
        if labels.shape != (n,) or indices.shape != (n,):
            raise DataError(f"{self.source or 'labels'}: expected {n} labels and {n} indices, "
                            f"got shapes {labels.shape} and {indices.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or not np.issubdtype(indices.dtype, np.integer):
            raise DataError(f"{self.source or 'labels'}: labels and indices must be integers")
        if n and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise DataError(f"{self.source or 'labels'}: labels must lie in 0..{len(self.classes) - 1}")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))
        object.__setattr__(self, "indices", indices.astype(np.int64, copy=False))
        object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))

    def __len__(self) -> int:
        return len(self.labels)

    def __repr__(self) -> str:
        return f"CifarArrays(n={len(self)}, classes={len(self.classes)}, source={self.source!r})"

    def take(self, positions: np.ndarray | Sequence[int]) -> CifarArrays:
        """The images at these positions (not source indices), in the given order."""
        positions = np.asarray(positions, dtype=np.int64)
        return CifarArrays(self.images[positions], self.labels[positions], self.classes,
                           self.indices[positions], self.source)

    def class_counts(self) -> np.ndarray:
        """Number of images of each class, in class order."""
        return np.bincount(self.labels, minlength=len(self.classes))


# ---------------------------------------------------------------- loading
def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = read_pickle(path, "CIFAR-10", _LAYOUT)
    if "data" not in batch or "labels" not in batch:
        raise DataError(f"corrupt CIFAR-10 file {path}: expected keys 'data' and 'labels', "
                        f"found {sorted(batch)}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != _ROW_BYTES:
        shape = getattr(data, "shape", type(data).__name__)
        raise DataError(f"corrupt CIFAR-10 file {path}: expected 'data' as a uint8 array of shape "
                        f"(N, 3072) (R, G, B planes of 32x32), got {getattr(data, 'dtype', '')} {shape}")
    try:
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"corrupt CIFAR-10 file {path}: 'labels' is not a list of ints ({exc})") from exc
    if labels.shape != (len(data),) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise DataError(f"corrupt CIFAR-10 file {path}: expected {len(data)} labels in 0..9, "
                        f"got shape {labels.shape}")
    # Each row is R(1024) G(1024) B(1024) in row-major order -> (N, 3, 32, 32) -> HWC.
    images = np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    return images, labels


def _read_classes(folder: Path) -> tuple[str, ...]:
    meta = read_pickle(folder / META_FILE, "CIFAR-10", _LAYOUT)
    names = meta.get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise DataError(f"corrupt CIFAR-10 file {folder / META_FILE}: expected 'label_names', a list of 10 names")
    return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)


def find_cifar10_dir(data_dir: str | Path) -> Path:
    """The cifar-10-batches-py folder: `data_dir` itself or its child of that name; DataError if neither."""
    data_dir = Path(data_dir).expanduser()
    for candidate in (data_dir / FOLDER_NAME, data_dir):
        if candidate.is_dir() and any((candidate / f).exists() for f in (META_FILE, *TRAIN_FILES, *TEST_FILES)):
            return candidate
    raise DataError(f"no CIFAR-10 data at {data_dir}: expected {_LAYOUT}, either at that path or in "
                    f"{data_dir / FOLDER_NAME} (download_cifar10() fetches the official archive)")


def load_cifar10(data_dir: str | Path | None = None, split: str = "train") -> CifarArrays:
    """CIFAR-10 `split` ("train" or "test") from a batches folder, an .npz saved by save_arrays, or the sample."""
    if split not in ("train", "test"):
        raise ConfigError(f"split={split!r}: expected 'train' or 'test'")
    if data_dir is None or Path(data_dir).suffix == ".npz":
        return _load_npz(SAMPLE_PATH if data_dir is None else Path(data_dir), split)
    folder = find_cifar10_dir(data_dir)
    classes = _read_classes(folder)
    parts = [_read_batch(folder / name) for name in (TRAIN_FILES if split == "train" else TEST_FILES)]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts])
    logger.info("loaded %d CIFAR-10 %s images from %s", len(labels), split, folder)
    return CifarArrays(images, labels, classes, np.arange(len(labels), dtype=np.int64), f"{folder}:{split}")


def _load_npz(path: Path, split: str) -> CifarArrays:
    keys = ("images", "labels", "indices", "classes", "split")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in keys if k not in npz.files]
            if missing:
                raise DataError(f"corrupt CIFAR-10 npz {path}: missing keys {missing}; expected {list(keys)}")
            stored = {k: npz[k] for k in keys}
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read CIFAR-10 npz {path}: {type(exc).__name__}: {exc}; expected an .npz "
                        f"with keys {list(keys)}") from exc
    if str(stored["split"]) != split:
        raise DataError(f"{path} holds {stored['split']} images only; for split={split!r} pass data_dir= "
                        f"a {FOLDER_NAME} folder")
    return CifarArrays(stored["images"], stored["labels"], tuple(stored["classes"].tolist()),
                       stored["indices"], f"{path}:{split}")


def save_arrays(arrays: CifarArrays, path: str | Path, split: str = "train") -> Path:
    """Write arrays as a compressed .npz that load_cifar10(path, split) reads back."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, images=arrays.images, labels=arrays.labels, indices=arrays.indices,
                        classes=np.array(arrays.classes), split=np.array(split))
    return path


# ---------------------------------------------------------------- subsets and splits
def _rng(rng_or_seed: np.random.Generator | int) -> np.random.Generator:
    return rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)


def _class_ids(arrays: CifarArrays, classes: Sequence[str | int] | None) -> list[int]:
    if classes is None:
        return list(range(len(arrays.classes)))
    ids = []
    for c in classes:
        if isinstance(c, (int, np.integer)) and 0 <= c < len(arrays.classes):
            ids.append(int(c))
        elif isinstance(c, str) and c in arrays.classes:
            ids.append(arrays.classes.index(c))
        else:
            raise ConfigError(f"unknown class {c!r}; expected a name of {arrays.classes} or an index 0..9")
    if len(set(ids)) != len(ids):
        raise ConfigError(f"classes={list(classes)} names a class twice")
    return ids


def subset(arrays: CifarArrays, n: int, rng_or_seed: np.random.Generator | int,
           classes: Sequence[str | int] | None = None, balanced: bool = True,
           relabel: bool = False) -> CifarArrays:
    """n images of the given classes (all by default), class-balanced to within one, seeded, in source order.

    relabel=True maps labels to 0..k-1 in the order of `classes` (for a k-way classifier).
    """
    ids = _class_ids(arrays, classes)
    rng = _rng(rng_or_seed)
    pools = [np.flatnonzero(arrays.labels == c) for c in ids]
    available = sum(len(p) for p in pools)
    if not 0 < n <= available:
        raise ConfigError(f"subset of n={n}: expected 1..{available} (images of the chosen classes)")
    if balanced:
        quota = np.full(len(ids), n // len(ids))
        quota[rng.choice(len(ids), n % len(ids), replace=False)] += 1  # who gets the remainder is seeded
        short = [(arrays.classes[c], len(p), q) for c, p, q in zip(ids, pools, quota) if len(p) < q]
        if short:
            raise ConfigError(f"balanced subset of n={n} needs {short[0][2]} images of class {short[0][0]!r}, "
                              f"which has only {short[0][1]}; lower n or pass balanced=False")
        chosen = np.concatenate([rng.choice(p, q, replace=False) for p, q in zip(pools, quota)])
    else:
        chosen = rng.choice(np.concatenate(pools), n, replace=False)
    picked = arrays.take(np.sort(chosen))
    if not relabel:
        return picked
    mapping = np.full(len(arrays.classes), -1, dtype=np.int64)
    mapping[ids] = np.arange(len(ids))
    return CifarArrays(picked.images, mapping[picked.labels], tuple(arrays.classes[c] for c in ids),
                       picked.indices, picked.source)


def train_val_split(arrays: CifarArrays | np.ndarray, val_size: float | int,
                    rng_or_seed: np.random.Generator | int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) positions, stratified by class; val_size is a fraction in (0, 1) or a count."""
    labels = arrays.labels if isinstance(arrays, CifarArrays) else np.asarray(arrays, dtype=np.int64)
    n = len(labels)
    n_val = round(val_size * n) if isinstance(val_size, float) else int(val_size)
    if not 0 < n_val < n:
        raise ConfigError(f"val_size={val_size} leaves {n_val} of {n} images for validation; "
                          "expected a fraction in (0, 1) or a count in 1..N-1")
    rng = _rng(rng_or_seed)
    class_ids, counts = np.unique(labels, return_counts=True)
    # Largest-remainder apportionment: per-class val counts proportional to class size, summing to n_val.
    exact = counts * n_val / n
    quota = np.floor(exact).astype(np.int64)
    order = np.lexsort((class_ids, -(exact - quota)))  # largest remainder first, ties by class id
    quota[order[: n_val - quota.sum()]] += 1
    val = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(class_ids, quota)])
    is_val = np.zeros(n, dtype=bool)
    is_val[val] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


# ---------------------------------------------------------------- tensors and batches
def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC images -> float32 NCHW, scaled to [0, 1] and standardised with the CIFAR-10 mean/std."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise DataError(f"normalize expects uint8 images (N, 32, 32, 3), got {images.dtype} {tuple(images.shape)}")
    x = images.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # .to copies, so in-place ops are safe
    mean = torch.tensor(CIFAR10_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return x.sub_(mean).div_(std).contiguous()


def to_tensor(arrays: CifarArrays, device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(x float32 N,3,32,32 normalised, y int64 N) on `device`."""
    device = torch.device(device)
    # Move uint8 first: a quarter of the bytes of float32 cross to the accelerator.
    images = torch.from_numpy(np.ascontiguousarray(arrays.images)).to(device)
    return normalize(images), torch.from_numpy(arrays.labels.copy()).to(device)


def iterate_batches(arrays: CifarArrays, batch_size: int, rng_or_seed: np.random.Generator | int | None = None,
                    device: str | torch.device = "cpu", shuffle: bool = True,
                    drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of (x, y) device batches; pass one Generator across epochs for distinct, reproducible orders."""
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size}: expected a positive integer")
    if shuffle and rng_or_seed is None:
        raise ConfigError("shuffle=True needs a seed or numpy Generator (fne never uses the global RNG)")
    order = _rng(rng_or_seed).permutation(len(arrays)) if shuffle else np.arange(len(arrays))
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    for start in range(0, stop, batch_size):
        yield to_tensor(arrays.take(order[start:start + batch_size]), device)


def heuristic_batch(data_dir: str | Path | None, batch_size: int, seed: int,
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """x of a class-balanced, seeded batch of training images: the input of the training-free heuristics."""
    return heuristic_labelled_batch(data_dir, batch_size, seed, device)[0]


def heuristic_labelled_batch(data_dir: str | Path | None, batch_size: int, seed: int,
                             device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of heuristic_batch's class-balanced, seeded batch: the images and their labels (for ZiCo's loss)."""
    return to_tensor(subset(load_cifar10(data_dir, "train"), batch_size, seed), device)


# ---------------------------------------------------------------- download
def file_md5(path: str | Path) -> str:
    """Hex md5 of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | Path, md5: str) -> None:
    """DataError unless the file exists and has this md5."""
    if not Path(path).is_file():
        raise DataError(f"missing archive {path}")
    actual = file_md5(path)
    if actual != md5.lower():
        raise DataError(f"archive {path} has md5 {actual}, expected {md5}: incomplete or not the official "
                        "cifar-10-python.tar.gz; delete it and download again")


def extract_tar_safely(archive: str | Path, dest: str | Path) -> None:
    """Extract a tar archive into dest, refusing links, devices, absolute paths and paths that leave dest."""
    dest = Path(dest).resolve()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for m in members:
                parts = PurePosixPath(m.name).parts
                outside = not (dest / m.name).resolve().is_relative_to(dest)
                if not (m.isfile() or m.isdir()) or m.name.startswith(("/", "\\")) or ".." in parts or outside:
                    raise DataError(f"unsafe member {m.name!r} in archive {archive}: expected plain files "
                                    "and folders inside the archive's root")
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(dest, members=members, **kwargs)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot extract {archive}: {type(exc).__name__}: {exc}") from exc


def _fetch(url: str, target: Path, progress: bool) -> None:
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                for chunk in iter(lambda: response.read(io.DEFAULT_BUFFER_SIZE * 64), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as exc:  # URLError, timeouts and disk errors are all OSErrors
        partial.unlink(missing_ok=True)
        raise DataError(f"could not download {url}: {exc}; fetch it by hand and pass its folder as "
                        "data_dir") from exc
    os.replace(partial, target)


def download_cifar10(root: str | Path, url: str = ARCHIVE_URL, md5: str = ARCHIVE_MD5,
                     progress: bool = True) -> Path:
    """Download, md5-check and extract the official archive under root (once); returns the batches folder."""
    root = Path(root).expanduser()
    folder = root / FOLDER_NAME
    if all((folder / f).is_file() for f in (*TRAIN_FILES, *TEST_FILES, META_FILE)):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    if not archive.is_file() or file_md5(archive) != md5.lower():
        logger.info("downloading %s to %s", url, archive)
        _fetch(url, archive, progress)
    verify_md5(archive, md5)
    extract_tar_safely(archive, root)
    missing = [f for f in (*TRAIN_FILES, *TEST_FILES, META_FILE) if not (folder / f).is_file()]
    if missing:
        raise DataError(f"archive {archive} did not contain {FOLDER_NAME}/{missing[0]}; expected {_LAYOUT}")
    return folder
