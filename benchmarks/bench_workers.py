"""Scoring throughput: in process vs a local dask cluster of 1 and of 2 worker processes, in one run.

    python benchmarks/bench_workers.py                   # 32 NB201 cells, C=8, 1 cell per stage, 32 images
    python benchmarks/bench_workers.py --C 16 --layers 5 --batch-size 64   # NB201's own network (~10 s/net)

All three back ends score the same genotypes on the same image batch; the script checks that their score
rows are identical and prints wall-clock seconds of `evaluate` (cluster start-up is printed apart), nets
per second, and the 2-worker speedup over 1 worker. The load average is printed too: other processes on
the machine slow the workers down unevenly.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd
import torch

from fne.genotopheno.spaces import get_space
from fne.run.distributed import DaskEvaluator, DataSpec, connect, load_images, start_local_cluster
from fne.scoring.fitness import FitnessConfig, score_genotypes

VOLATILE = ("seconds", "device")  # the only columns allowed to differ between back ends


def distinct_genotypes(space, n: int, seed: int) -> list[str]:
    """n distinct random genotypes of the space, drawn with a seeded generator."""
    rng = np.random.default_rng(seed)
    chosen: dict[str, None] = {}
    while len(chosen) < n:
        chosen[space.sample(rng)] = None
    return list(chosen)


def time_dask(workers: int, space, images: torch.Tensor, config: FitnessConfig,
              genotypes: list[str]) -> tuple[float, float, pd.DataFrame]:
    """(start-up seconds, scoring seconds, rows) on a fresh local cluster of `workers` processes."""
    started = time.perf_counter()
    cluster = start_local_cluster(workers)
    with DaskEvaluator(connect(cluster), space, images, config, cluster=cluster) as evaluator:
        evaluator.evaluate(genotypes[:workers])  # warm-up: every worker imports torch and builds once
        ready = time.perf_counter()
        rows = evaluator.evaluate(genotypes)
        done = time.perf_counter()
    return ready - started, done - ready, rows


def main() -> None:
    """Parse options, score the same nets with each back end, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=32)
    parser.add_argument("--C", type=int, default=8, help="NB201 channels (16 in NAS-Bench-201)")
    parser.add_argument("--layers", type=int, default=1, help="NB201 cells per stage (5 in NAS-Bench-201)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=None, help="CIFAR-10 folder (default: the shipped sample)")
    args = parser.parse_args()

    space = get_space("nb201", C=args.C, layers=args.layers)
    config = FitnessConfig(batch_size=args.batch_size, seed=args.seed, device="cpu")
    images = load_images(DataSpec(args.data_dir), config)
    genotypes = distinct_genotypes(space, args.nets, args.seed)
    print(f"{args.nets} NB201 nets (C={args.C}, N={args.layers}), batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs, load average before: {os.getloadavg()[0]:.2f}")

    score_genotypes(space, genotypes[:1], images, config)  # warm-up, as the workers get
    default_threads = torch.get_num_threads()
    runs = []  # (back end, torch threads per process, start-up s, scoring wall s, rows)
    for threads in (default_threads, 1):  # 1 thread: what each worker runs with, to tell threads from processes
        torch.set_num_threads(threads)
        started = time.perf_counter()
        scored = score_genotypes(space, genotypes, images, config)
        runs.append(("in process", threads, 0.0, time.perf_counter() - started, scored))
    torch.set_num_threads(default_threads)
    for workers in (1, 2):
        startup, seconds, scored = time_dask(workers, space, images, config, genotypes)
        runs.append((f"dask, {workers} worker{'s' * (workers > 1)}", 1, startup, seconds, scored))

    reference = runs[0][4].drop(columns=list(VOLATILE))
    identical = all(run[4].drop(columns=list(VOLATILE)).equals(reference) for run in runs)
    print(f"{'back end':<16}{'threads/proc':>13}{'start-up s':>12}{'scoring s':>11}{'nets/s':>9}"
          f"{'compute s':>11}")
    for name, threads, startup, seconds, scored in runs:
        # compute s: the per-net seconds measured inside score_genotypes, summed over all processes.
        print(f"{name:<16}{threads:>13}{startup:>12.1f}{seconds:>11.1f}{args.nets / seconds:>9.2f}"
              f"{scored['seconds'].sum():>11.1f}")
    wall = {name + str(threads): seconds for name, threads, _, seconds, _ in runs}
    two, one = wall["dask, 2 workers1"], wall["dask, 1 worker1"]
    print(f"speedup 2 workers vs 1 worker: {one / two:.2f}x; 2 workers vs in process: "
          f"{wall[f'in process{default_threads}'] / two:.2f}x ({default_threads} threads), "
          f"{wall['in process1'] / two:.2f}x (1 thread)")
    print(f"score rows identical across back ends: {identical}; load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":  # dask's worker processes are spawned and re-import this module
    main()
