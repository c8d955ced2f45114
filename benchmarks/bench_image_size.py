"""Cost of scoring at 64x64 input vs the same images resized to 32x32, for an NB201 and a DARTS network.

    python benchmarks/bench_image_size.py                      # C=8, one cell a stage, 3 archs, 3 repeats
    python benchmarks/bench_image_size.py --C 16 --archs 4 --repeats 5

The 64x64 images are real CIFAR-10 training images (the shipped sample) upscaled with PIL (bilinear), stored
as an .npz in a temp dir and opened as a dataset twice: at its native 64x64, and with image_size=32
(fne.data.batches: area averaging). Each seeded random architecture is scored by
fne.scoring.fitness.score_genotypes with the default heuristics on a 64-image probe batch, the two sizes
interleaved over repeats so load from other processes hits both alike; the median seconds per architecture
are printed with their ratio (64 / 32) from the same run. Spearman's rho between the two sizes' aggregate
ranks is printed too, as a hint of whether the size changes the order of candidates.

Measured on the shared 2-core machine, --archs 4 --repeats 3: NB201 1.40 vs 0.40 s/arch (3.5x), DARTS 9.13 vs
3.03 s/arch (3.0x), rho 1.00 for both (report/datasets.md; recommendation in fne/data/DATASETS.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning threads distort timings

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from scipy import stats  # noqa: E402

from fne.data.batches import probe_batch  # noqa: E402
from fne.data.cifar10 import SAMPLE_PATH  # noqa: E402
from fne.data.dataset import OpenOptions  # noqa: E402
from fne.data.datasets import open_dataset  # noqa: E402
from fne.genotopheno.spaces import get_space  # noqa: E402
from fne.scoring.aggregation import az_nas_log_rank  # noqa: E402
from fne.scoring.fitness import FitnessConfig, score_genotypes  # noqa: E402


def upscaled_sample(folder: Path, size: int) -> Path:
    """The shipped CIFAR-10 sample upscaled to size x size, as an .npz the npz format opens."""
    with np.load(SAMPLE_PATH) as npz:
        images, labels, classes = npz["images"], npz["labels"], npz["classes"]
    big = np.stack([np.asarray(Image.fromarray(i).resize((size, size), Image.BILINEAR)) for i in images])
    path = folder / f"sample{size}.npz"
    np.savez(path, images=big, labels=labels, class_names=classes)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--nb201-layers", type=int, default=1, help="NB201 cells per stage")
    parser.add_argument("--darts-layers", type=int, default=5, help="DARTS cells in all (5: one a stage)")
    parser.add_argument("--archs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="fne-bench-size-") as tmp:
        path = upscaled_sample(Path(tmp), 64)
        batches = {}
        for size in (64, 32):
            dataset = open_dataset(path, OpenOptions(image_size=size, val_fraction=0.0, cache_dir=tmp))
            batches[size] = probe_batch(dataset, 64, 0)
    print(f"probe 64 images; C={args.C}, {args.threads} thread(s), default heuristics")
    for name, layers in (("nb201", args.nb201_layers), ("darts", args.darts_layers)):
        config = FitnessConfig(seed=0, device="cpu", C=args.C, layers=layers)
        space = get_space(name)
        rng = np.random.default_rng(0)
        genotypes = [space.sample(rng) for _ in range(args.archs)]
        seconds = {64: [], 32: []}
        tables = {}
        for _ in range(args.repeats):
            for size in (64, 32):
                images, labels = batches[size]
                start = time.perf_counter()
                tables[size] = score_genotypes(space, genotypes, images, config, labels=labels)
                seconds[size].append((time.perf_counter() - start) / len(genotypes))
        median = {size: statistics.median(s) for size, s in seconds.items()}
        ranks = {size: az_nas_log_rank(t[list(config.heuristics)].to_numpy(dtype=float)) for size, t in
                 tables.items()}
        rho = stats.spearmanr(ranks[64], ranks[32])[0] if len(genotypes) > 2 else float("nan")
        print(f"{name:>6}: {median[64]:.3f} s/arch at 64x64, {median[32]:.3f} s/arch at 32x32, "
              f"ratio {median[64] / median[32]:.2f}x; Spearman rho of aggregate ranks {rho:.2f}")


if __name__ == "__main__":
    main()
