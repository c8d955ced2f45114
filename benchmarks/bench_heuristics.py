"""Seconds per architecture of each heuristic, as ratios to one plain forward+backward measured in the same run.

    python benchmarks/bench_heuristics.py --threads 2 --archs 4 --repeats 3

For each architecture (NB201 at C=16, N=5 and DARTS-space nets at widths 16/32/64, one cell per stage;
batch 64 real CIFAR-10 images) the timings are interleaved round-robin over repeats, and the median of
each is kept, so that load from other processes hits all of them alike:

    fwd+bwd       one plain batched forward + backward in train mode (the unit)
    ntk, linear_regions, grad_corr   each score alone through score_network (fne's defaults)
    all three     the three scores together (they share one forward + backward)
    az E+P, az_trainability, meco, swap, zico, synflow   each new score alone (log_flops/log_params are free:
                  fitness passes the counts it already has); E+P = az_expressivity + az_progressivity
    AZ-NAS four   az_expressivity, az_progressivity, az_trainability, log_flops (one hooked forward + one
                  backward of random signals)
    recommended   fitness.RECOMMENDED_HEURISTICS together (AZ-NAS's four, meco, synflow)
    recommended+zico   the same and zico (its two half-batch forward+backward passes)
    defaults      fitness.DEFAULT_HEURISTICS together (AZ-NAS's four, meco, swap, zico): target <= 2.5x
    space defaults  the space's own default scores (search_defaults; DARTS: az_expressivity, linear_regions,
                  cell_breadth), as its search scores them: target <= 2.5x at NB301's layout
                  (--darts-shape '16.32.64|2.2.2': 8 cells, reductions at cells 3 and 6)
    ntk (vmap)    the torch.func implementation of the same NTK
    loop          the per-sample loop oracle: one forward+backward per sample (frozen BatchNorm)
    TE-NAS loop   TE-NAS's procedure: one train-mode forward, one backward per sample (--tenas-loop)

Targets on a 2-core CPU: ntk <= 2x fwd+bwd, all three <= 3x, batched >= 10x faster than the loop;
recommended(+zico) <= 2.5x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

# Before torch loads OpenMP: spinning threads on a shared machine distort every timing (see README).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fne.data.cifar10 import heuristic_labelled_batch  # noqa: E402
from fne.genotopheno.network import count_flops, count_parameters
from fne.genotopheno.spaces import get_space
from fne.scoring.fitness import DEFAULT_HEURISTICS, RECOMMENDED_HEURISTICS, FitnessConfig, candidate_seed, score_network
from fne.scoring.heuristics import ProbeSettings, probe_network
from fne.scoring.jacobians import batch_norm_mode, ntk_gram_loop


def fwd_bwd(model: torch.nn.Module, x: torch.Tensor) -> None:
    """One plain training-style step without the optimiser: forward in train mode, backward of the sum."""
    model.train()
    model.zero_grad(set_to_none=True)
    model(x).sum().backward()


def loop_ntk(model: torch.nn.Module, x: torch.Tensor, mode: str) -> None:
    """The per-sample loop NTK under the given BatchNorm mode ("frozen": the oracle; "train": TE-NAS)."""
    if mode == "frozen":
        with torch.no_grad(), batch_norm_mode(model, "frozen") as stats:
            model(x)
        with batch_norm_mode(model, "frozen", stats):
            ntk_gram_loop(model, x)
    else:
        with batch_norm_mode(model, "train"):
            ntk_gram_loop(model, x)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


NEW_CASES = {"az E+P": ("az_expressivity", "az_progressivity"), "az_trainability": ("az_trainability",),
             "meco": ("meco",), "swap": ("swap",), "zico": ("zico",), "synflow": ("synflow",),
             "AZ-NAS four": ("az_expressivity", "az_progressivity", "az_trainability", "log_flops"),
             "recommended": RECOMMENDED_HEURISTICS, "recommended+zico": (*RECOMMENDED_HEURISTICS, "zico"),
             "defaults": DEFAULT_HEURISTICS}


def bench_arch(space_name: str, genotype: str, x: torch.Tensor, y: torch.Tensor, repeats: int, loop: bool,
               tenas_loop: bool, only: set[str] | None = None) -> dict[str, float]:
    """Median seconds of every variant for one architecture."""
    space = get_space(space_name)
    cases_of_space = {**NEW_CASES, "space defaults": tuple(space.search_defaults.get("heuristics", DEFAULT_HEURISTICS))}
    model = space.build(genotype, seed=candidate_seed(0, space.canonical(genotype)))
    cases: dict[str, Callable[[], object]] = {"fwd+bwd": lambda: fwd_bwd(model, x)}
    for names in (("ntk",), ("linear_regions",), ("grad_corr",), ("ntk", "linear_regions", "grad_corr")):
        config = FitnessConfig(batch_size=len(x), heuristics=names, device="cpu")
        label = names[0] if len(names) == 1 else "all three"
        cases[label] = lambda config=config: score_network(model, x, config)
    # As in a search: fitness hands the parameter and FLOP counts it already has to the scores.
    counts = {"params": count_parameters(model), "flops": count_flops(model)}
    for label, names in cases_of_space.items():
        config = FitnessConfig(batch_size=len(x), heuristics=names, device="cpu")
        cases[label] = lambda config=config: score_network(model, x, config, labels=y, **counts)
    cases["ntk (vmap)"] = lambda: probe_network(model, x, {"ntk"}, ProbeSettings(ntk_method="vmap"))
    if loop:
        cases["loop"] = lambda: loop_ntk(model, x, "frozen")
    if only:  # the unit is always timed
        cases = {name: fn for name, fn in cases.items() if name == "fwd+bwd" or name in only}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():  # warm-up: first-call allocations and lazy initialisation
        fn()
    for _ in range(repeats):
        for name, fn in cases.items():
            samples[name].append(timed(fn))
    result = {name: statistics.median(values) for name, values in samples.items()}
    if tenas_loop:  # 64 coupled backward passes: once, it is the slowest by far
        result["TE-NAS loop"] = timed(lambda: loop_ntk(model, x, "train"))
    result["mflops"] = count_flops(model) / 1e6
    result["params"] = sum(p.numel() for p in model.parameters())
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--archs", type=int, default=3, help="random architectures per space")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-loop", action="store_true", help="skip the per-sample loop")
    parser.add_argument("--tenas-loop", action="store_true", help="also time TE-NAS's coupled loop (slow)")
    parser.add_argument("--spaces", default="nb201,darts", help="comma-separated spaces to time")
    parser.add_argument("--darts-shape", default=None,
                        help="widths|cells of the DARTS nets (e.g. 16.32.64|2.2.2, NB301's 8-cell layout)")
    parser.add_argument("--only", default=None, help="comma-separated case labels to time (fwd+bwd always)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = heuristic_labelled_batch(None, args.batch_size, args.seed)
    rng = np.random.default_rng(args.seed)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"median of {args.repeats} interleaved repeats")
    for space_name in args.spaces.split(","):
        space = get_space(space_name)
        genotypes = [space.sample(rng) for _ in range(args.archs)]
        if space_name == "darts" and args.darts_shape:
            genotypes = ["|".join(g.split("|")[:2]) + "|" + args.darts_shape for g in genotypes]
        if space_name == "nb201":  # the benchmark's best cell: all 3x3 convs, the costliest kind
            genotypes[0] = "C+CC+kCC"
        ratios: dict[str, list[float]] = {}
        print(f"\n== {space_name} ==")
        for genotype in genotypes:
            only = set(args.only.split(",")) if args.only else None
            row = bench_arch(space_name, genotype, x, y, args.repeats, not args.no_loop, args.tenas_loop, only)
            unit = row["fwd+bwd"]
            cells = [f"{genotype}  {row['mflops']:.0f} MFLOPs {row['params'] / 1e6:.2f} M params",
                     f"fwd+bwd {unit:.3f} s"]
            for name, seconds in row.items():
                if name in ("fwd+bwd", "mflops", "params"):
                    continue
                ratios.setdefault(name, []).append(seconds / unit)
                cells.append(f"{name} {seconds:.3f} s ({seconds / unit:.2f}x)")
            if "loop" in row:
                ratios.setdefault("loop / ntk", []).append(row["loop"] / row["ntk"])
                cells.append(f"loop/ntk {row['loop'] / row['ntk']:.1f}x")
            if "TE-NAS loop" in row:
                ratios.setdefault("TE-NAS loop / ntk", []).append(row["TE-NAS loop"] / row["ntk"])
            print("\n  ".join(cells))
        print(f"-- {space_name}: geometric mean over {len(genotypes)} architectures --")
        for name, values in ratios.items():
            unit = "x faster than ntk" if "/" in name else "x fwd+bwd"
            print(f"  {name:18s} {float(np.exp(np.mean(np.log(values)))):6.2f} {unit}")


if __name__ == "__main__":
    main()
