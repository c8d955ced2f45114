"""Regenerate fne/data/cifar10_sample.npz: 1,000 real CIFAR-10 training images, 100 per class.

The choice is `subset(train, 1000, seed=0)` over the 50,000 official training images in order
(data_batch_1..5 concatenated), so the same data and seed always give the same indices and pixels.
The .npz bytes may differ between runs (zip timestamps); its arrays do not.

    python experiments/make_cifar10_sample.py [--data-dir ../shared/data] [--out fne/data/...]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from fne.data.cifar10 import SAMPLE_PATH, load_cifar10, save_arrays, subset

SAMPLE_SEED = 0
SAMPLE_SIZE = 1000
REPO_ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    """Load the training set, draw the balanced seeded sample, write it and log a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT.parent / "shared" / "data",
                        help="cifar-10-batches-py folder or its parent (official or shared copy)")
    parser.add_argument("--out", type=Path, default=SAMPLE_PATH)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    train = load_cifar10(args.data_dir, "train")
    sample = subset(train, SAMPLE_SIZE, SAMPLE_SEED)
    save_arrays(sample, args.out, split="train")

    batches = np.bincount(sample.indices // 10_000, minlength=5)
    logging.info("wrote %s: %d images, per class %s, per data_batch_1..5 %s, first indices %s",
                 args.out, len(sample), sample.class_counts().tolist(), batches.tolist(),
                 sample.indices[:8].tolist())


if __name__ == "__main__":
    main()
