"""Validate the latency predictor: random cells of a space, predicted from the table vs measured end to end.

    fne latency-table --device cpu --threads 1          # the cached table (once per device)
    python experiments/latency_validation.py --space darts --cells 60 --out report/latency/darts.csv
    python experiments/latency_validation.py --space nb201 --cells 60 --out report/latency/nb201.csv

Each cell is a random genotype of the space (DARTS: random ops and wiring, random widths 10..99 per stage and
1..3 normal cells per stage; NB201: a random cell of the 15,625). Its own network (as `fne export
--as-searched --no-auxiliary` writes it) is timed end to end at batch 1 with the table's timer and clock.
Its latency is predicted twice (sum of parts times the table's calibration on its own reference networks,
which are other random cells): from the cached table (measured earlier, as a search uses it), and from a
fresh table whose parts are timed in the same shuffled passes as the networks, so that load from other
processes hits both alike (each part and network keeps its fastest median: load only ever adds time). The
first figure is what a search gets on this machine; the second is the additive model's own error. Rows go
to --out; a rerun with an existing --out only prints. Also prints, for comparison, the Spearman of FLOPs
and of parameters with the measured latency.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from fne.deploy.latency_model import LatencyPredictor, measure_network, part_timer, searched_network, space_parts
from fne.deploy.latency_table import LatencyTable, TableKey, load_table
from fne.deploy.timing import clock_name
from fne.genotopheno.genotype import Genotype, format_genotype, parse
from fne.genotopheno.network import count_flops, count_parameters
from fne.genotopheno.spaces import get_space
from fne.threads import apply_thread_rule


def random_cells(space_name: str, count: int, seed: int) -> list[str]:
    """`count` distinct random genotypes (DARTS with random widths and cell counts)."""
    space, rng, cells = get_space(space_name), np.random.default_rng(seed), []
    while len(cells) < count:
        genotype = space.sample(rng)
        if space_name == "darts":
            parsed = parse(genotype)
            widths = tuple(int(w) for w in rng.integers(10, 100, size=len(parsed.widths)))
            counts = tuple(int(c) for c in rng.integers(1, 4, size=len(parsed.widths)))
            genotype = format_genotype(Genotype(parsed.normal, parsed.reduce, widths, counts))
        if genotype not in cells:
            cells.append(genotype)
    return cells


def interleaved(space, cells: list[str], side: int, device, passes: int, min_run_time: float,
                key: TableKey) -> tuple[LatencyTable, dict[str, float]]:
    """A fresh table of the space's parts and the cells' end-to-end timings, measured in the same shuffled passes
    (fastest median of each), so that load on the machine hits the parts and the networks alike."""
    table, timer, timings = LatencyTable(key), part_timer(space, device, min_run_time), {}
    models = {genotype: searched_network(space, genotype) for genotype in cells}
    jobs = [("part", part) for part in space_parts(space, (side,))] + [("network", genotype) for genotype in cells]
    for number in range(passes):
        for i in np.random.default_rng(number).permutation(len(jobs)):
            kind, job = jobs[i]
            if kind == "part":
                ms = timer(job)[0]
                if job not in table.rows or ms < table.rows[job][0]:
                    table.add(job, ms)
            else:
                ms = measure_network(models[job], side, device, min_run_time=min_run_time).median_ms
                timings[job] = min(ms, timings.get(job, ms))
    return table, timings


def summary(table: pd.DataFrame, predicted: str) -> str:
    """Spearman, median and 90th-percentile relative error, and bias of one prediction column."""
    relative = (table[predicted] - table.measured_ms).abs() / table.measured_ms
    return (f"Spearman {spearmanr(table[predicted], table.measured_ms)[0]:.3f}, median relative error "
            f"{100 * relative.median():.1f}% (90th percentile {100 * relative.quantile(0.9):.1f}%), median "
            f"predicted/measured {np.median(table[predicted] / table.measured_ms):.3f}")


def main() -> None:
    """Measure the cells (and a fresh interleaved table) unless --out has them, then print the agreement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="darts")
    parser.add_argument("--cells", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--min-run-time", type=float, default=0.1)
    parser.add_argument("--passes", type=int, default=3, help="Shuffled passes over the parts and networks.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    apply_thread_rule(args.threads)
    import torch

    device, space, side = torch.device("cpu"), get_space(args.space), args.image_size
    key = TableKey.current(device, args.threads)
    start = time.process_time()
    if not args.out.exists():
        cells = random_cells(args.space, args.cells, args.seed)
        fresh, timings = interleaved(space, cells, side, device, args.passes, args.min_run_time, key)
        cached, now = LatencyPredictor(load_table(key), space, side), LatencyPredictor(fresh, space, side)
        rows = [{"genotype": genotype, "params": count_parameters(model := searched_network(space, genotype)),
                 "flops": count_flops(model, (1, 3, side, side)), "measured_ms": timings[genotype],
                 "predicted_ms": cached.predict_ms(genotype), "predicted_interleaved_ms": now.predict_ms(genotype),
                 "sum_of_parts_interleaved_ms": now.sum_of_parts_ms(genotype), "scale_cached": cached.scale,
                 "scale_interleaved": now.scale, "clock": clock_name(device)} for genotype in cells]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
    table = pd.read_csv(args.out)
    print(f"{args.space}: {len(table)} cells, measured {table.measured_ms.min():.2f}..{table.measured_ms.max():.2f} "
          f"ms ({time.process_time() - start:.0f} CPU-s now)")
    print(f"cached table (measured before): {summary(table, 'predicted_ms')}")
    print(f"interleaved table (measured with the networks): {summary(table, 'predicted_interleaved_ms')}")
    print(f"  the same, uncalibrated sum of parts: {summary(table, 'sum_of_parts_interleaved_ms')}")
    print(f"calibration scales: cached table {table.scale_cached[0]:.3f}, interleaved {table.scale_interleaved[0]:.3f}")
    print(f"for comparison: Spearman FLOPs vs measured {spearmanr(table.flops, table.measured_ms)[0]:.3f}, "
          f"parameters vs measured {spearmanr(table.params, table.measured_ms)[0]:.3f}")


if __name__ == "__main__":
    main()
