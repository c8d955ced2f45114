"""Scoring throughput under fne's threading rule vs torch's defaults, alone and beside one busy process.

    python benchmarks/bench_threads.py                       # NB201 TinyNetwork C=16 N=5, batch 64, ~3 min
    python benchmarks/bench_threads.py --C 8 --layers 1 --seconds 8   # a quick look

Four configurations, each in a fresh Python process, because OpenMP reads its wait policy once, when
`import torch` loads it (fne/threads.py):

    rule      fne.threads.apply_thread_rule(): OMP_WAIT_POLICY=PASSIVE, one torch thread per usable core
    defaults  torch as installed: no wait policy (libgomp spins 300,000 times per barrier), its own threads

each alone and beside one busy process (a subprocess spinning a pure-Python loop, one core's worth of
work). Every process scores the same NB201 cell (default: C+CC+kCC, the costliest kind, all 3x3
convolutions) again and again through fne.scoring.fitness.score_genotypes on real CIFAR-10 images until
--seconds have passed (at least once), so every evaluation costs the same and the median seconds per
evaluation compare directly. --rounds > 1 interleaves the configurations, so that load from other
processes hits them alike. Ratios are to "rule, alone" of the same run. Target: rule beside the busy
process at most 2x slower than alone (a fair share of 2 cores).

Measured on the shared 2-core machine (load average 4-7 from other users, so "alone" is never idle):
rule beside busy 1.38x and 1.48x rule alone; torch defaults beside busy 27.9x and 7.0x rule alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar-10-batches-py"
CLEARED = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "FNE_THREADS")  # every worker starts bare
BUSY_LOOP = "while True:\n    pass\n"
CONFIGS = (("rule", False), ("defaults", False), ("rule", True), ("defaults", True))


def worker(args: argparse.Namespace) -> None:
    """Child process: apply the rule (or not) before torch loads, then time score_genotypes net by net."""
    if args.worker == "rule":
        from fne.threads import apply_thread_rule

        apply_thread_rule(args.threads)
    import torch

    from fne.data.cifar10 import heuristic_batch
    from fne.genotopheno.spaces import get_space
    from fne.scoring.fitness import FitnessConfig, score_genotypes

    space = get_space("nb201", C=args.C, layers=args.layers)
    config = FitnessConfig(batch_size=args.batch_size, seed=args.seed, device="cpu")
    images = heuristic_batch(args.data_dir, args.batch_size, args.seed)
    score_genotypes(space, ["k+kk+kkk"], images, config)  # warm-up: first-call allocations, cheapest cell
    seconds: list[float] = []
    began = time.perf_counter()
    while not seconds or time.perf_counter() - began < args.seconds:
        start = time.perf_counter()
        score_genotypes(space, [args.genotype], images, config)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads(),
                      "wait_policy": os.environ.get("OMP_WAIT_POLICY", "(unset)")}))


def run_worker(name: str, busy: bool, args: argparse.Namespace) -> dict:
    """Run one configuration in a fresh process (beside a spinning process when busy); its parsed result."""
    env = {key: value for key, value in os.environ.items() if key not in CLEARED}
    command = [sys.executable, __file__, "--worker", name, "--genotype", args.genotype, "--seconds", str(args.seconds),
               "--C", str(args.C), "--layers", str(args.layers), "--batch-size", str(args.batch_size),
               "--seed", str(args.seed)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    if args.threads:
        command += ["--threads", str(args.threads)]
    spinner = subprocess.Popen([sys.executable, "-c", BUSY_LOOP], env=env) if busy else None
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    finally:
        if spinner is not None:
            spinner.terminate()
            spinner.wait()
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the four configurations and print seconds per net with ratios to the rule alone."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genotype", default="C+CC+kCC", help="NB201 cell scored over and over")
    parser.add_argument("--seconds", type=float, default=15.0, help="scoring time per configuration and round")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds of the four configurations")
    parser.add_argument("--C", type=int, default=16, help="NB201 channels (16 in NAS-Bench-201)")
    parser.add_argument("--layers", type=int, default=5, help="NB201 cells per stage (5 in NAS-Bench-201)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="--threads of the rule (default: usable cores)")
    parser.add_argument("--data-dir", default=str(SHARED_DATA) if SHARED_DATA.is_dir() else None,
                        help="cifar-10-batches-py folder (default: ../shared/data's, else the shipped sample)")
    parser.add_argument("--worker", choices=("rule", "defaults"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    print(f"NB201 {args.genotype} C={args.C} N={args.layers}, batch {args.batch_size} real images from "
          f"{args.data_dir or 'the shipped sample'}, {len(os.sched_getaffinity(0))} usable cores, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    results = {config: {"seconds": []} for config in CONFIGS}
    for _ in range(args.rounds):
        for config in CONFIGS:
            result = run_worker(*config, args)
            results[config].update(threads=result["threads"], wait_policy=result["wait_policy"])
            results[config]["seconds"] += result["seconds"]
    median = {config: statistics.median(result["seconds"]) for config, result in results.items()}
    base = median[("rule", False)]
    print(f"\n{'configuration':<24}{'threads':>8}  {'OMP_WAIT_POLICY':<16}{'evaluations':>12}{'median s':>10}"
          f"{'vs rule alone':>15}")
    for (name, busy), result in results.items():
        label = f"{name}, {'beside busy' if busy else 'alone'}"
        print(f"{label:<24}{result['threads']:>8}  {result['wait_policy']:<16}{len(result['seconds']):>12}"
              f"{median[(name, busy)]:>10.2f}{median[(name, busy)] / base:>14.2f}x")
    rule_busy = median[("rule", True)] / base
    defaults_busy = median[("defaults", True)] / median[("defaults", False)]
    print(f"\nbeside one busy process: rule {rule_busy:.2f}x its time alone (target <= 2x: "
          f"{'met' if rule_busy <= 2 else 'MISSED'}), torch defaults {defaults_busy:.2f}x theirs")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
