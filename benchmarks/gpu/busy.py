"""Section 3: architectures per second scoring one at a time in process vs several dask workers on one GPU.

The concurrent back end is fne's own (fne.run.distributed): a LocalCluster of W single-threaded
worker processes, each pinned to cuda:<index mod device count>, so on one GPU all W share it and their
kernels overlap. Scores depend only on (seed, genotype), so every back end must give the same rows; the
largest relative difference to the in-process rows is reported (cuDNN may pick other algorithms per
process). The default for `--device cuda` stays in process until this table was measured on a GPU.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from .common import Check, Section, distinct_genotypes, markdown_table, real_batch, synchronize, write_csv

TITLE = "3. Keeping the GPU busy"


def max_relative_difference(reference: pd.DataFrame, other: pd.DataFrame, columns: list[str]) -> float:
    """Largest |a - b| / max(|a|, |b|) over finite score pairs; inf when one side is undefined and not the other."""
    worst = 0.0
    for column in columns:
        a, b = reference[column].to_numpy(float), other[column].to_numpy(float)
        if not np.array_equal(np.isinf(a), np.isinf(b)):
            return math.inf
        finite = np.isfinite(a) & np.isfinite(b)
        scale = np.maximum(np.abs(a[finite]), np.abs(b[finite]))
        if finite.any():
            worst = max(worst, float(np.max(np.abs(a[finite] - b[finite]) / np.where(scale > 0, scale, 1.0))))
    return worst


def in_process(check: Check, space, genotypes: list[str], images, config) -> tuple[float, pd.DataFrame]:
    """(seconds, rows) of score_genotypes over all genotypes, one at a time, in this process."""
    from fne.scoring.fitness import score_genotypes

    device_images = images.to(check.device)
    score_genotypes(space, genotypes[:1], device_images, config)  # warm-up
    synchronize(check.device)
    started = time.perf_counter()
    rows = score_genotypes(space, genotypes, device_images, config)
    synchronize(check.device)
    return time.perf_counter() - started, rows


def on_dask(workers: int, space, genotypes: list[str], images, config) -> tuple[float, float, pd.DataFrame]:
    """(start-up seconds, scoring seconds, rows) on a fresh local cluster of `workers` processes."""
    from fne.run.distributed import DaskEvaluator, connect, start_local_cluster

    started = time.perf_counter()
    cluster = start_local_cluster(workers)
    with DaskEvaluator(connect(cluster), space, images, config, cluster=cluster) as evaluator:
        evaluator.evaluate(genotypes[:workers])  # warm-up: every worker imports torch, builds, initialises CUDA
        ready = time.perf_counter()
        rows = evaluator.evaluate(genotypes)
        done = time.perf_counter()
    return ready - started, done - ready, rows


def run(check: Check) -> Section:
    """Score the same architectures in process and on 1..W dask workers; write busy.csv."""
    from fne.genotopheno.spaces import get_space
    from fne.scoring.fitness import FitnessConfig

    section = Section(TITLE)
    sizes = check.sizes
    space = get_space("nb201", C=sizes.nb201_C, layers=sizes.nb201_layers)
    config = FitnessConfig(batch_size=sizes.batch_size, seed=check.seed, device=check.device)
    images = real_batch(check, sizes.batch_size)[0]  # labels: the dask path scores without them, as the search does
    genotypes = distinct_genotypes(space, sizes.busy_archs, check.seed + 1)
    seconds, reference = in_process(check, space, genotypes, images, config)
    rows = [{"back end": "in process, one at a time", "workers": 0, "start-up s": 0.0, "scoring s": seconds}]
    scores = list(config.heuristics)
    differences = [0.0]
    for workers in sizes.busy_workers:
        try:
            startup, seconds, scored = on_dask(workers, space, genotypes, images, config)
        except Exception as error:  # noqa: BLE001 - a missing dask or a failing cluster is a finding, not a crash
            section.status = f"dask failed: {type(error).__name__}"
            rows.append({"back end": f"dask: {type(error).__name__}: {error}"[:100], "workers": workers})
            differences.append(math.nan)
            continue
        rows.append({"back end": "dask workers on one device", "workers": workers, "start-up s": startup,
                     "scoring s": seconds})
        differences.append(max_relative_difference(reference, scored, scores))
    table = pd.DataFrame(rows)
    table["archs/s"] = len(genotypes) / table["scoring s"]
    table["vs in process"] = table["archs/s"] / table["archs/s"].iloc[0]
    table["max rel. score difference"] = differences
    section.files.append(write_csv(table, check, "busy.csv"))
    best = table.iloc[table["archs/s"].fillna(0).to_numpy().argmax()]
    section.markdown = "\n\n".join([
        f"{len(genotypes)} seeded NB201 architectures (C={sizes.nb201_C}, N={sizes.nb201_layers}, batch "
        f"{sizes.batch_size}, the default scores) scored in this process one at a time, then on a fresh dask "
        "LocalCluster of W single-threaded worker processes sharing the one device (fne.run.distributed, "
        "the path of `fne search --workers W`); start-up and a warm-up round are excluded from `scoring s`.",
        markdown_table(table),
        f"Fastest here: {best['back end']} with {int(best['workers'])} worker(s), {best['vs in process']:.2f}x the "
        "in-process rate. **The default of `--device cuda` is unchanged** (in process, one architecture at a "
        "time): change it only from this table measured on a real GPU, not from a --quick run.",
    ])
    return section
