"""Measure a search's pick end to end and set it against the run's latency budget and its predicted latency.

    fne search --space darts --generations 2 --population 8 --offspring 8 --max-latency-ms 12 \
        --latency-threads 1 --out runs/darts-12ms
    python experiments/latency_pick.py runs/darts-12ms runs/darts-free

Reads each run's best.json and config.json, builds the pick's own network (the network the prediction is
of), times the picks at batch 1 in --passes alternating passes with the latency table's timer and clock on
the table's device and thread count (the first run's), and prints each pick's predicted and measured
(fastest pass) latency next to its run's budget, and the predicted range of every candidate it evaluated.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fne.deploy.latency_model import LatencyPredictor, measure_network, searched_network
from fne.deploy.latency_table import TableKey, load_table
from fne.genotopheno.network import count_parameters
from fne.genotopheno.spaces import get_space
from fne.threads import apply_thread_rule


def main() -> None:
    """Print each run's pick's predicted and measured batch-1 latency against the run's budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", type=Path, nargs="+")
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    args = parser.parse_args()
    searches = [json.loads((run / "config.json").read_text())["search"] for run in args.run_dirs]
    threads = searches[0].get("latency_threads") or 1
    apply_thread_rule(threads)
    import torch

    device = torch.device(searches[0].get("latency_device", "cpu"))
    table = load_table(TableKey.current(device, threads))
    picks = []
    for run, search in zip(args.run_dirs, searches):
        space, side = get_space(search["space"]), search.get("image_size") or 32
        genotype = json.loads((run / "best.json").read_text())["genotype"]
        picks.append((LatencyPredictor(table, space, side), searched_network(space, genotype), genotype, side))
    timings: list[list[float]] = [[] for _ in picks]
    for _ in range(args.passes):  # alternating, so the picks are timed under the same load
        for timing, (_, model, _, side) in zip(timings, picks):
            timing.append(measure_network(model, side, device, min_run_time=args.min_run_time).median_ms)
    for run, search, timing, (predictor, model, genotype, _) in zip(args.run_dirs, searches, timings, picks):
        history = pd.read_csv(run / "history.csv")
        predicted = history["genotype"].map(predictor.predict_ms)
        measured, budget = min(timing), search.get("max_latency_ms")
        verdict = "" if not budget else f"; budget {budget} ms: {'met' if measured <= budget else 'EXCEEDED'}"
        print(f"{run}: pick {genotype} ({count_parameters(model):,} parameters)")
        print(f"  predicted {predictor.predict_ms(genotype):.2f} ms, measured {measured:.2f} ms (fastest of "
              f"{'; '.join(f'{ms:.2f}' for ms in timing)}) at batch 1 on {device.type}, {threads} thread(s){verdict}")
        print(f"  the {len(history)} candidates evaluated: predicted {predicted.min():.2f}..{predicted.max():.2f} ms")


if __name__ == "__main__":
    main()
