"""Peak memory of the finalists' stage with and without giving freed heap pages back (fne/memory.py).

    python benchmarks/bench_finalist_memory.py --finalists 16 --steps 3

Trains the same seeded random NB201 cells the way the NB201 default's finalists train (its FinalistConfig:
width 8, float64, batch 64) for `--steps` steps each, on the shipped sample images, once as fne does and
once with `release_freed_memory` switched off, each in its own process so that each has its own peak
(ru_maxrss). Prints both peaks, the CPU seconds and the ratios. The arms alternate over `--repeats`.

Measured 2026-12-06 on the shared 2-core machine (glibc, torch 2.13 CPU, one thread, beside a one-thread run):
8 finalists x 12 steps: peak 2.36 -> 1.71 GiB (0.72x), CPU 1.02x; 12 x 3 steps: 3.25 -> 1.68 GiB (0.52x),
CPU 1.28x (each release makes the next network fault its pages in again; with 3 steps a network that is a
larger share than with the 12 to 100 of a real rung). One run per arm: the ratios carry the machine's noise.
The NB201 default run (64 finalists) reached 17.8 GiB resident without the release.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import dataclasses, json, resource, sys, time
import numpy as np, torch
from fne.threads import apply_thread_rule
apply_thread_rule(1)
import fne.training.finalists as finalists
from fne.data.source import open_data, uint8_images
from fne.genotopheno.spaces import get_space
from fne.run.config import SearchConfig

count, steps, release = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "on"
if not release:
    finalists.release_freed_memory = lambda: False
space = get_space("nb201")
rng = np.random.default_rng(0)
genotypes = [space.sample(rng) for _ in range(count)]
settings = SearchConfig(space="nb201").finalist_config()
settings = dataclasses.replace(settings, top=count, rungs=(steps, steps + 1))
dataset = open_data(None, 32)
positions = finalists.stream_positions(dataset.train_size, settings)
images = uint8_images(dataset, positions, "train", "cpu")
labels = torch.from_numpy(dataset.train_labels[positions].astype(np.int64))
start = time.process_time()
finalists.successive_halving(space, genotypes, images, labels, settings, stats=dataset.stats,
                             num_classes=dataset.num_classes, ordered=True)
print(json.dumps({"peak_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "cpu_s": time.process_time() - start}))
"""


def measure(count: int, steps: int, release: bool) -> dict:
    """Peak RSS (GiB) and CPU seconds of one child process training `count` finalists."""
    result = subprocess.run([sys.executable, "-c", CHILD, str(count), str(steps), "on" if release else "off"],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    """Both arms, alternating; print peaks, CPU seconds and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--finalists", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="steps each finalist trains (first rung)")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    arms: dict[str, list[dict]] = {"released (fne)": [], "kept (glibc's default)": []}
    for _ in range(args.repeats):
        for name, release in (("kept (glibc's default)", False), ("released (fne)", True)):
            arms[name].append(measure(args.finalists, args.steps, release))
    base = arms["kept (glibc's default)"]
    for name, runs in arms.items():
        peak = max(r["peak_gib"] for r in runs)
        cpu = sum(r["cpu_s"] for r in runs) / len(runs)
        print(f"{name:24s} peak {peak:6.2f} GiB  CPU {cpu:7.1f} s  "
              f"peak ratio {peak / max(r['peak_gib'] for r in base):.2f}  "
              f"CPU ratio {cpu / (sum(r['cpu_s'] for r in base) / len(base)):.2f}")


if __name__ == "__main__":
    main()
