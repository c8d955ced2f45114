"""An image folder larger than memory: index time cold and cached, probe-batch time, peak memory.

    python benchmarks/bench_dataset_folder.py                  # 100,000 64x64 PNGs, ~1 GB in a temp dir
    python benchmarks/bench_dataset_folder.py --images 5000    # a quick look

The folder is written from real CIFAR-10 training images (--cifar, default ../shared/data), upscaled to
64x64 (bilinear) and saved as PNG in one folder per class; past 50,000 the images repeat, each repeat
flipped left-right so every file differs. Then a fresh Python process (so its peak RSS is the dataset
layer's, not the writer's) opens the folder with an empty cache (index cold), again (index cached),
measures the statistics on a seeded 2,000-image sample, and draws a 64-image probe batch at the native
64x64 and resized to 32x32. A third fresh process runs the default search on the folder (DARTS space, its
default population, `--image-size 32`, index cached) until its first generation is written: the time to
the first generation and that process's peak memory. Targets: index within 60 s, peak memory within 2 GiB.

Measured on the shared 2-core machine (load from other users), 100,000 images:
index 6.2 s cold, 1.05 s cached; statistics 1.0 s; probe batch 0.05 s (64x64), 0.45 s (to 32x32);
peak RSS 544 MiB, all of it import torch (report/datasets.md has the printed output).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def build_folder(folder: Path, images: int, cifar: Path, size: int) -> float:
    """Write `images` PNGs of real CIFAR-10 images at size x size; returns the seconds it took."""
    from PIL import Image

    from fne.data.cifar10 import load_cifar10

    start = time.perf_counter()
    train = load_cifar10(cifar, "train")
    for name in train.classes:
        (folder / name).mkdir(parents=True, exist_ok=True)
    for i in range(images):
        source = i % len(train)
        pixels = train.images[source][:, ::-1] if (i // len(train)) % 2 else train.images[source]
        image = Image.fromarray(np.ascontiguousarray(pixels)).resize((size, size), Image.BILINEAR)
        image.save(folder / train.classes[train.labels[source]] / f"{i:06d}.png", compress_level=1)
    return time.perf_counter() - start


def measure(folder: Path, cache: Path) -> dict[str, float]:
    """Open the folder cold and cached, measure its statistics, draw probe batches; seconds and peak MiB."""
    from fne.data.batches import probe_batch
    from fne.data.dataset import OpenOptions
    from fne.data.datasets import open_dataset

    figures = {"rss_after_import_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    options = OpenOptions(cache_dir=str(cache))
    start = time.perf_counter()
    dataset = open_dataset(folder, options)
    figures["index_cold_s"] = time.perf_counter() - start
    start = time.perf_counter()
    dataset = open_dataset(folder, options)
    figures["index_cached_s"] = time.perf_counter() - start
    start = time.perf_counter()
    dataset.stats  # noqa: B018 - measured here, cached for the batches
    figures["stats_2000_images_s"] = time.perf_counter() - start
    start = time.perf_counter()
    x, _ = probe_batch(dataset, 64, 0)
    figures["probe_64_native_s"] = time.perf_counter() - start
    small = open_dataset(folder, OpenOptions(cache_dir=str(cache), image_size=32))
    start = time.perf_counter()
    x32, _ = probe_batch(small, 64, 0)
    figures["probe_64_resized_32_s"] = time.perf_counter() - start
    figures.update(images=dataset.train_size + dataset.val_size, probe_shape=str(tuple(x.shape)),
                   probe32_shape=str(tuple(x32.shape)),
                   peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return figures


def first_generation(folder: Path, cache: Path) -> dict[str, float]:
    """A default search on the folder until generation 0 is on disk: seconds and peak MiB of this process."""
    os.environ["FNE_CACHE_DIR"] = str(cache)
    import fne

    start = time.perf_counter()
    result = fne.search(data=str(folder), generations=0, out=folder.parent / "run", progress=False)
    return {"first_generation_s": time.perf_counter() - start, "evaluated": len(result.history),
            "search_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cifar", type=Path, default=ROOT.parent / "shared" / "data" / "cifar-10-batches-py")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process's folder
    parser.add_argument("--search", type=Path, help=argparse.SUPPRESS)  # the search child's folder
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.measure.parent / "cache")))
        return
    if args.search:
        print(json.dumps(first_generation(args.search, args.search.parent / "cache")))
        return
    with tempfile.TemporaryDirectory(prefix="fne-bench-folder-") as tmp:
        folder = Path(tmp) / "images"
        seconds = build_folder(folder, args.images, args.cifar, args.size)
        disk = sum(f.stat().st_size for f in folder.rglob("*.png")) / 2**20
        print(f"wrote {args.images} {args.size}x{args.size} PNGs ({disk:.0f} MiB) in {seconds:.1f} s")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for mode in ("--measure", "--search"):
            child = subprocess.run([sys.executable, __file__, mode, str(folder)], env=env, check=True,
                                   capture_output=True, text=True)
            for key, value in json.loads(child.stdout.strip().splitlines()[-1]).items():
                print(f"{key:>24}: {value:.2f}" if isinstance(value, float) else f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
