"""Section 2: milliseconds per architecture of every score, as ratios to one forward+backward, and peak memory.

The defaults (fne.scoring.fitness.DEFAULT_HEURISTICS) and the registry (HEURISTICS) are read when the
check runs, so scores added after this file was written are measured too.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from .common import (
    Check,
    Section,
    distinct_genotypes,
    markdown_table,
    peak_mib,
    real_batch,
    reset_peak,
    timed,
    with_labels,
    write_csv,
)

TITLE = "2. Scoring speed"

BEST_CELL = "C+CC+kCC"  # NB201's best CIFAR-10 cell: all 3x3 convolutions, the costliest kind


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> None:
    """The unit: one plain forward in train mode and the backward of the summed logits."""
    model.train()
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()


def cases(check: Check, model, x, y) -> dict[str, Callable[[], object]]:
    """What is timed on one built network: the unit, the default scores together, each registered score alone."""
    from fne.scoring.fitness import DEFAULT_HEURISTICS, HEURISTICS, FitnessConfig, score_network

    config = FitnessConfig(batch_size=len(x), device=check.device)
    labels = with_labels(score_network, y)
    found: dict[str, Callable[[], object]] = {"fwd+bwd": lambda: fwd_bwd(model, x)}
    defaults = replace(config, heuristics=DEFAULT_HEURISTICS)
    found["defaults (" + "+".join(DEFAULT_HEURISTICS) + ")"] = lambda: score_network(model, x, defaults, **labels)
    for name in HEURISTICS:
        alone = replace(config, heuristics=(name,))
        found[name] = lambda alone=alone: score_network(model, x, alone, **labels)
    return found


def time_architecture(check: Check, space, genotype: str, x, y) -> list[dict]:
    """Median seconds and peak MiB of every case on one architecture (repeats interleaved round-robin)."""
    from fne.scoring.fitness import candidate_seed

    model = space.build(genotype, seed=candidate_seed(check.seed, space.canonical(genotype))).to(check.device)
    timed_cases = cases(check, model, x, y)
    peaks, outcome = {}, {}
    for name, fn in timed_cases.items():  # warm-up, peak memory and whether the score is defined
        reset_peak(check.device)
        result = fn()
        peaks[name] = peak_mib(check.device)
        scores = result[0] if isinstance(result, tuple) else {}
        outcome[name] = "" if all(map(math.isfinite, scores.values())) else "undefined: " + "; ".join(
            f"{k}: {v}" for k, v in result[1].items())
    samples: dict[str, list[float]] = {name: [] for name in timed_cases}
    for _ in range(check.sizes.speed_repeats):
        for name, fn in timed_cases.items():
            samples[name].append(timed(fn, check.device))
    unit = statistics.median(samples["fwd+bwd"])
    return [{"genotype": genotype, "case": name, "ms": 1e3 * statistics.median(values),
             "ratio_to_fwd_bwd": statistics.median(values) / unit, "peak_mib": peaks[name], "note": outcome[name][:120]}
            for name, values in samples.items()]


def end_to_end(check: Check, space, genotypes: list[str], x, y, build_ahead: bool | None = None) -> float:
    """Seconds per architecture of score_genotypes with the defaults: build, FLOP count and probe included.

    `build_ahead` False/True measures scoring without/with the next network built in a thread (None: fne's default).
    """
    import inspect

    from fne.scoring.fitness import FitnessConfig, score_genotypes

    config = FitnessConfig(batch_size=len(x), device=check.device)
    options = with_labels(score_genotypes, y)
    if build_ahead is not None and "build_ahead" in inspect.signature(score_genotypes).parameters:
        options["build_ahead"] = build_ahead
    score_genotypes(space, genotypes[:1], x, config, **options)  # warm-up
    return timed(lambda: score_genotypes(space, genotypes, x, config, **options), check.device) / len(genotypes)


def launches(space, x, y) -> str:
    """ATen calls and host transfers of one architecture's default scoring (fne.launch_count), if available."""
    try:
        from fne.launch_count import count_launches
        from fne.scoring.fitness import FitnessConfig, score_genotypes
    except ImportError:  # a commit from before the launch counter
        return "launch counts: not available in this commit"
    config = FitnessConfig(batch_size=len(x), device=str(x.device))
    counted = count_launches(lambda: score_genotypes(space, [BEST_CELL], x, config, **with_labels(score_genotypes, y)))
    return f"launches of one architecture ({BEST_CELL}): {counted.aten_calls:,} ATen calls, " \
        f"{counted.host_transfers} host transfers"


def run(check: Check) -> Section:
    """Time every score on a few NB201 TinyNetworks; write speed.csv (per architecture) and speed_summary.csv."""
    from fne.genotopheno.spaces import get_space

    section = Section(TITLE)
    sizes = check.sizes
    space = get_space("nb201", C=sizes.nb201_C, layers=sizes.nb201_layers)
    x, y = real_batch(check, sizes.batch_size, check.device)
    genotypes = distinct_genotypes(space, sizes.speed_archs, check.seed, first=[BEST_CELL])
    rows = [row for genotype in genotypes for row in time_architecture(check, space, genotype, x, y)]
    table = pd.DataFrame(rows)
    section.files.append(write_csv(table, check, "speed.csv"))
    summary = table.groupby("case", sort=False).agg(
        median_ms=("ms", "median"),
        ratio_geomean=("ratio_to_fwd_bwd", lambda r: float(np.exp(np.mean(np.log(r))))),
        peak_mib_max=("peak_mib", "max"),
        undefined=("note", lambda n: int((n != "").sum())),
    ).reset_index()
    section.files.append(write_csv(summary, check, "speed_summary.csv"))
    per_arch = end_to_end(check, space, genotypes, x, y)
    inline, ahead = (end_to_end(check, space, genotypes, x, y, build_ahead=flag) for flag in (False, True))
    section.markdown = "\n\n".join([
        f"NB201 TinyNetwork C={sizes.nb201_C}, N={sizes.nb201_layers}, batch {sizes.batch_size} real CIFAR-10 "
        f"images on {check.device}; {len(genotypes)} architectures (the best cell {BEST_CELL} first, then seeded "
        f"random ones), median of {sizes.speed_repeats} interleaved repeats after a warm-up. `ratio_geomean` is the "
        "geometric mean over architectures of ms / (one forward+backward of the same network, same run); "
        "`peak_mib_max` is torch.cuda.max_memory_allocated during the case (– on a CPU); `undefined` counts "
        "architectures where the score came out +inf.",
        markdown_table(summary),
        f"End to end, `score_genotypes` with the defaults (build, FLOP count, probe): {1e3 * per_arch:.1f} ms per "
        f"architecture, {1 / per_arch:.2f} architectures/s. Per-architecture rows: `speed.csv`.",
        f"Built in line: {1 / inline:.2f} architectures/s; the next one built in a thread while one is probed: "
        f"{1 / ahead:.2f} architectures/s (fne's default on CUDA). {launches(space, x, y)}.",
    ])
    return section
