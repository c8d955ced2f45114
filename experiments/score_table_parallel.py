#!/usr/bin/env python
"""Fill a plot_scores study cache with several single-threaded processes (for a many-core machine).

    python experiments/score_table_parallel.py --space darts --processes 12 --cache OUT/score_cache.jsonl \
        --heuristics az_expressivity,...,zico [--then ntk] [--minutes 7]

The table, sample, images, labels and FitnessConfig are resolved exactly as `plot_scores` resolves them, so the
cache it writes has the same settings key and `plot_scores ... --cache OUT/score_cache.jsonl` afterwards reads
every score from it (computing only what is missing). Each process scores every `processes`-th architecture
into its own cache file (`CACHE.partN`), which are appended to CACHE at the end; `--then` names scores computed
in a second pass once every process has finished the first; `--minutes` stops starting new architectures after
that long (what was scored is kept).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time
from dataclasses import replace
from pathlib import Path


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--space", default="darts")
    parser.add_argument("--ground-truth", type=Path, default=None)
    parser.add_argument("--sample", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", dest="C", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None)
    parser.add_argument("--heuristics", required=True)
    parser.add_argument("--then", default="", help="scores of a second pass (e.g. the costly ntk)")
    parser.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--cache", type=Path, required=True)
    return parser.parse_args()


def resolve(args: argparse.Namespace):
    """(space, genotypes, images, labels, config) exactly as plot_scores resolves them."""
    from fne.commands.plot_scores import _table_defaults
    from fne.data.cifar10 import heuristic_labelled_batch
    from fne.genotopheno.spaces import get_space
    from fne.scoring.fitness import FitnessConfig
    from fne.study.score_study import load_ground_truth, sample_rows

    space = get_space(args.space)
    path, arch, accuracy = _table_defaults(space, args.ground_truth, None, None)
    table = sample_rows(load_ground_truth(path, arch, accuracy, space, C=args.C, layers=args.layers),
                        args.sample or None, args.seed)
    build_C, build_layers = space.table_build_size(args.C, args.layers)
    names = tuple(n for n in args.heuristics.split(",") if n)
    config = FitnessConfig(batch_size=args.batch_size, seed=args.seed, device="cpu", heuristics=names, C=build_C,
                           layers=build_layers)
    images, labels = heuristic_labelled_batch(None, args.batch_size, args.seed)
    return space, list(table["canonical"]), images, labels, config


def work(args: argparse.Namespace, index: int, deadline: float | None, names: tuple[str, ...]) -> int:
    """Score this process's share of the architectures into CACHE.partN; the number scored."""
    import torch

    torch.set_num_threads(1)
    from fne.study.score_study import ScoreCache, score_with_cache, settings_key

    space, genotypes, images, labels, config = resolve(args)
    config = replace(config, heuristics=names)
    cache = ScoreCache(f"{args.cache}.part{index}", settings_key(config, images, space.name, labels))
    done = 0
    for genotype in genotypes[index::args.processes]:
        if deadline is not None and time.time() > deadline:
            break
        score_with_cache(space, [genotype], images, config, cache, progress=False, labels=labels)
        done += 1
    return done


def main() -> None:
    """Run the passes, then append every part file to the cache."""
    args = parse_args()
    deadline = time.time() + 60 * args.minutes if args.minutes else None
    passes = [tuple(args.heuristics.split(","))] + ([tuple(args.then.split(","))] if args.then else [])
    started = time.time()
    for names in passes:
        with mp.get_context("spawn").Pool(args.processes) as pool:
            counts = pool.starmap(work, [(args, i, deadline, names) for i in range(args.processes)])
        print(f"{','.join(names)}: {sum(counts)} architectures in {time.time() - started:.0f} s", flush=True)
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    with args.cache.open("ab") as merged:
        for index in range(args.processes):
            part = Path(f"{args.cache}.part{index}")
            if part.exists():
                merged.write(part.read_bytes())
                part.unlink()


if __name__ == "__main__":
    main()
