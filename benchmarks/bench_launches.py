"""ATen calls, host transfers and CPU time of one architecture's default scoring, per space, against one fwd+bwd.

    python benchmarks/bench_launches.py --threads 1 --archs 8

For each space, one architecture is scored end to end as the search scores it: the size budget's check
(when the space's search sets one), then `score_genotypes` with the space's default scores on a batch of
64 real CIFAR-10 images and their labels (build, initialise, move to the device, probe, scores). The unit
is one plain forward+backward of the same network on the same batch in train mode. Counted with
fne.launch_count (top-level ATen calls of torch.profiler; host transfers by method), so the figures are
those of issue 23's table:

    space (cell)               the architecture counted (NB201 `C+Cc+kCC`; DARTS_V2 at the search's widths)
    fwd+bwd calls              ATen calls of the unit
    score calls / ratio        ATen calls of score_genotypes, and as a multiple of the unit (target: NB201
                               5x, DARTS 3x)
    search calls / ratio       the same plus the budget check the search runs first
    host transfers             of score_genotypes (target: at most 40)
    CPU ms per arch            median process CPU time of score_genotypes over --archs random architectures
                               of the space, next to the unit's, timed round-robin so load hits both alike

Run it on two commits in one session to compare them; timings drift with the machine's load, ratios less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (see README)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fne.data.batches import probe_batch  # noqa: E402
from fne.data.source import open_data  # noqa: E402
from fne.evolution.budget import BudgetCheck, SizeBudget  # noqa: E402
from fne.genotopheno.genotype import published  # noqa: E402
from fne.genotopheno.spaces import get_space  # noqa: E402
from fne.launch_count import count_launches  # noqa: E402
from fne.run.config import SearchConfig  # noqa: E402
from fne.scoring.fitness import candidate_seed, score_genotypes  # noqa: E402

CELLS = {"nb201": "C+Cc+kCC", "darts": str(published("DARTS_V2"))}  # DARTS_V2 at 16.32.64|1.1.1


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One plain training-style step without the optimiser: forward in train mode, backward of the sum."""
    model.train()
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()


def cpu_seconds(fn) -> float:
    """Process CPU seconds of one call."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def bench_space(space_name: str, x: torch.Tensor, y: torch.Tensor, archs: int, seed: int) -> dict[str, object]:
    """Counts for the space's cell and median CPU times over random architectures."""
    config = SearchConfig(space=space_name)
    space = get_space(space_name)
    fitness = config.fitness_config()
    cell = CELLS[space_name]
    budget = SizeBudget(config.max_params, config.max_flops)

    def score(genotype: str) -> None:
        score_genotypes(space, [genotype], x, fitness, labels=y)

    def search_step(genotype: str) -> None:
        if budget.active:
            BudgetCheck(space, budget).fits(genotype)
        score(genotype)

    model = space.build(space.canonical(cell), seed=candidate_seed(0, space.canonical(cell)))
    fwd_bwd(model, x)
    score(cell)  # warm-up: lazy initialisation and first-call allocations
    unit = count_launches(lambda: fwd_bwd(model, x))
    scored = count_launches(lambda: score(cell))
    searched = count_launches(lambda: search_step(cell))
    rng = np.random.default_rng(seed)
    genotypes = [space.sample(rng) for _ in range(archs)]
    score_times, unit_times = [], []
    for genotype in genotypes:  # round-robin: the unit and the scoring of the same architecture alike
        network = space.build(space.canonical(genotype), seed=0)
        unit_times.append(cpu_seconds(lambda network=network: fwd_bwd(network, x)))
        score_times.append(cpu_seconds(lambda genotype=genotype: score(genotype)))
    return {"cell": cell, "unit": unit, "scored": scored, "searched": searched,
            "score_ms": 1e3 * statistics.median(score_times), "unit_ms": 1e3 * statistics.median(unit_times),
            "heuristics": ",".join(fitness.heuristics)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--archs", type=int, default=8, help="random architectures per space for the CPU times")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spaces", default="nb201,darts")
    parser.add_argument("--top", type=int, default=0, help="also print the N most frequent ATen calls of scoring")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = probe_batch(open_data(None, 32), 64, args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch 64, device cpu")
    print("| space (its defaults) | fwd+bwd calls | score calls | ratio | search calls | ratio | host transfers "
          "| CPU ms per arch | fwd+bwd CPU ms | CPU ratio |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for space_name in args.spaces.split(","):
        row = bench_space(space_name, x, y, args.archs, args.seed)
        unit, scored, searched = row["unit"].aten_calls, row["scored"], row["searched"]
        print(f"| {space_name} ({row['heuristics']}; `{row['cell']}`) | {unit:,} | {scored.aten_calls:,} | "
              f"{scored.aten_calls / unit:.2f}x | {searched.aten_calls:,} | {searched.aten_calls / unit:.2f}x | "
              f"{scored.host_transfers} | {row['score_ms']:.0f} | {row['unit_ms']:.0f} | "
              f"{row['score_ms'] / row['unit_ms']:.2f}x |")
        if args.top:
            print(f"  {space_name} most frequent: {scored.aten_by_name.most_common(args.top)}")
            print(f"  {space_name} transfers: {dict(scored.transfers_by_method)}")


if __name__ == "__main__":
    main()
