"""Section 4: score NB201's whole space (15,625 cells) through the plot_scores study's resumable cache.

Architectures are scored in one seeded random order, so whatever the time budget reaches is a uniform
sample of the space, and the cache (fne.study.score_study.ScoreCache, one JSON line per architecture)
lets a later run with the same settings carry on where this one stopped. The correlations come from
fne.study.score_study.validate over every cached architecture, plus the default aggregate (the
rank-combined DEFAULT_HEURISTICS) when the scored set is larger than the defaults.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from .common import Check, Section, markdown_table, real_batch, write_csv

TITLE = "4. The whole NB201 space"

ARCH, ACCURACY = "arch_str", "cifar10_test"
CHUNK = 16  # architectures between two looks at the clock


def scored_names() -> tuple[str, ...]:
    """The defaults first, then every other registered score."""
    from fne.scoring import fitness

    rest = [name for name in fitness.HEURISTICS if name not in fitness.DEFAULT_HEURISTICS]
    return (*fitness.DEFAULT_HEURISTICS, *rest)


def score_until(check: Check, space, table: pd.DataFrame, images, labels, config, cache, deadline: float) -> int:
    """Score uncached architectures of `table` in its order until the deadline; how many were scored."""
    from fne.study.score_study import score_with_cache

    todo = [arch for arch in table[ARCH] if space.canonical(arch) not in cache]
    scored = 0
    for start in range(0, len(todo), CHUNK):
        if time.perf_counter() >= deadline:
            break
        chunk = todo[start:start + CHUNK]
        score_with_cache(space, chunk, images, config, cache, progress=False, labels=labels)
        scored += len(chunk)
    return scored


def run(check: Check) -> Section:
    """Score as much of the space as the budget allows; write space/scores.csv, correlations and a summary."""
    from fne.genotopheno.spaces import get_space
    from fne.scoring.aggregation import az_nas_log_rank
    from fne.scoring.fitness import DEFAULT_HEURISTICS, FitnessConfig
    from fne.study.score_study import ScoreCache, correlate, load_ground_truth, settings_key, validate

    section = Section(TITLE)
    if check.ground_truth is None or not check.ground_truth.is_file():
        section.status = "skipped"
        section.markdown = f"Skipped: no ground-truth CSV at {check.ground_truth} (give --ground-truth)."
        return section
    sizes = check.sizes
    space = get_space("nb201")
    table = load_ground_truth(check.ground_truth, ARCH, ACCURACY, space)
    table = table.iloc[np.random.default_rng(check.seed).permutation(len(table))].reset_index(drop=True)
    if sizes.space_limit is not None:
        table = table.head(sizes.space_limit)
    config = FitnessConfig(batch_size=sizes.batch_size, seed=check.seed, device=check.device,
                           heuristics=scored_names(), C=sizes.nb201_C, layers=sizes.nb201_layers)
    images, labels = real_batch(check, sizes.batch_size)  # labels: zico's loss
    cache_path = check.space_cache or check.out / "space" / "score_cache.jsonl"
    cache = ScoreCache(cache_path, settings_key(config, images, space.name, labels))
    cached_before = sum(space.canonical(a) in cache for a in table[ARCH])
    started = time.perf_counter()
    scored = score_until(check, space, table, images, labels, config, cache, started + 60.0 * check.budget_minutes)
    seconds = time.perf_counter() - started
    done = table.loc[np.array([space.canonical(a) in cache for a in table[ARCH]], dtype=bool)]
    result = validate(space, done, ARCH, ACCURACY, images, config, check.out / "space", cache_path, progress=False,
                      figures=False, labels=labels)
    correlations = result.correlations
    if len(config.heuristics) > len(DEFAULT_HEURISTICS):
        view = result.scores.assign(default_aggregate=az_nas_log_rank(result.scores, list(DEFAULT_HEURISTICS)))
        correlations = pd.concat([correlate(view, ACCURACY, ["default_aggregate"]), correlations], ignore_index=True)
        correlations.to_csv(check.out / "space" / "correlations.csv", index=False, float_format="%.4f")
    rate = scored / seconds if scored else math.nan
    remaining = len(table) - len(done)
    summary = pd.DataFrame([{"architectures": len(table), "cached before": cached_before, "scored now": scored,
                             "covered": len(done), "seconds": seconds, "archs/s": rate,
                             "minutes to finish at this rate": remaining / rate / 60 if scored else math.nan}])
    section.files += [write_csv(summary, check, "space_summary.csv"), *result.files]
    complete = "the whole space" if remaining == 0 else f"a uniform random sample of {len(done)} architectures"
    section.markdown = "\n\n".join([
        f"Scores: {', '.join(config.heuristics)} (defaults: {', '.join(DEFAULT_HEURISTICS)}), NB201 C={sizes.nb201_C} "
        f"N={sizes.nb201_layers}, batch {sizes.batch_size}, seed {check.seed}, in process on {check.device}, within "
        f"--budget-minutes {check.budget_minutes:g}. Cache: `{cache_path}` (rerun the same command to continue).",
        markdown_table(summary),
        f"Rank correlations with the true CIFAR-10 test accuracy over {complete} (higher = better predictor; "
        "`rank_combined` combines every scored heuristic, `default_aggregate` only the defaults):",
        markdown_table(correlations[~correlations["score"].str.startswith("rank_")
                                    | (correlations["score"] == "rank_combined")]),
        "Pairs of scores rank-combined: `space/correlations.csv`.",
    ])
    return section
