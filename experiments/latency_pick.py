"""Measure a search's pick end to end and set it against the run's latency budget and its predicted latency.

    fne search --space darts --generations 2 --population 8 --offspring 8 --max-latency-ms 12 \
        --latency-threads 1 --out runs/darts-12ms
    python experiments/latency_pick.py runs/darts-12ms

Reads best.json and config.json, builds the pick's own network (the network the prediction is of), times it
at batch 1 in --passes passes with the latency table's timer and clock on the table's device and thread
count, and prints its predicted and measured latency next to the budget (and every evaluated candidate's
predicted latency range from history.csv).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from fne.deploy.latency_model import LatencyPredictor, measure_network, searched_network
from fne.deploy.latency_table import TableKey, load_table
from fne.genotopheno.spaces import get_space
from fne.threads import apply_thread_rule


def main() -> None:
    """Print the pick's predicted and measured batch-1 latency against the run's budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    args = parser.parse_args()
    search = json.loads((args.run_dir / "config.json").read_text())["search"]
    threads = search.get("latency_threads") or 1
    apply_thread_rule(threads)
    import torch

    device = torch.device(search.get("latency_device", "cpu"))
    side = search.get("image_size") or 32
    space = get_space(search["space"])
    best = json.loads((args.run_dir / "best.json").read_text())
    predictor = LatencyPredictor(load_table(TableKey.current(device, threads)), space, side)
    model = searched_network(space, best["genotype"])
    measured = min(measure_network(model, side, device, min_run_time=args.min_run_time).median_ms
                   for _ in range(args.passes))
    history = pd.read_csv(args.run_dir / "history.csv")
    predicted = history["latency_ms"] if "latency_ms" in history else history["genotype"].map(predictor.predict_ms)
    budget = search.get("max_latency_ms")
    verdict = "" if not budget else f"; budget {budget} ms: {'met' if measured <= budget else 'EXCEEDED'}"
    print(f"{args.run_dir}: pick {best['genotype']} ({best.get('params', 0):,} parameters)")
    print(f"predicted {predictor.predict_ms(best['genotype']):.2f} ms, measured {measured:.2f} ms at batch 1 on "
          f"{device.type}, {threads} thread(s){verdict}")
    print(f"the {len(history)} candidates evaluated: predicted {predicted.min():.2f}..{predicted.max():.2f} ms")


if __name__ == "__main__":
    main()
