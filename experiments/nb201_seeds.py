"""NB201 search quality over seeds: run `NAS_on_cifar10.py --space nb201` per seed, summarise true accuracies.

Each seed is one ordinary search (the ground truth only fills the history's true_accuracy column; the
search never reads it). The summary gives, per seed, the true CIFAR-10 accuracy of the final best
architecture (the search's pick, best.json), CPU and wall
minutes, and mean +- std over seeds next to TE-NAS (93.9%) and the NB201 optimum (94.37%).

    python experiments/nb201_seeds.py --seeds 0 1 2 3 4 --jobs 2  # runs missing seeds, then summarises
    python experiments/nb201_seeds.py --summarise-only

Outputs: experiments/results/nb201_seeds/seed<k>/ (run directories), experiments/results/nb201_seeds.csv
and experiments/results/nb201_seeds.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
GROUND_TRUTH = ROOT.parent / "shared" / "data" / "nb201" / "nb201_cifar10.csv"
TE_NAS = 93.9  # TE-NAS (Chen et al., ICLR 2021), NB201 CIFAR-10 test accuracy, mean over runs
OPTIMUM = 94.37  # best architecture of NB201 on CIFAR-10 (200 epochs)


def run_seed(seed: int, args: argparse.Namespace) -> dict:
    """Run one search (unless its best.json exists) and return its timing record."""
    run_dir = RESULTS / "nb201_seeds" / f"seed{seed}"
    timing_file = run_dir / "experiment_timing.json"
    if (run_dir / "best.json").is_file() and timing_file.is_file():
        return json.loads(timing_file.read_text())
    sizes = [option for name in ("population", "offspring", "generations") if getattr(args, name) is not None
             for option in (f"--{name}", str(getattr(args, name)))]
    command = [sys.executable, str(ROOT / "NAS_on_cifar10.py"), "--space", "nb201", "--ground-truth",
               str(args.ground_truth), *sizes, "--seed", str(seed), "--device", "cpu", "--no-progress", *args.extra]
    command += ["--resume", str(run_dir)] if (run_dir / "config.json").is_file() else ["--out", str(run_dir)]
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "FNE_THREADS": str(args.threads)})
    # wait4 gives this child's own CPU time (RUSAGE_CHILDREN would also count seeds run beside it, --jobs).
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise subprocess.CalledProcessError(os.waitstatus_to_exitcode(status), command)
    record = {"seed": seed, "wall_minutes": (time.perf_counter() - start) / 60,
              "cpu_minutes": (usage.ru_utime + usage.ru_stime) / 60}
    timing_file.write_text(json.dumps(record, indent=2))
    return record


def summarise(seeds: list[int], timings: dict[int, dict]) -> pd.DataFrame:
    """One row per finished seed: best architecture, its true accuracy and percentile, timings."""
    truth = pd.read_csv(GROUND_TRUTH)["cifar10_test"]
    rows = []
    for seed in seeds:
        run_dir = RESULTS / "nb201_seeds" / f"seed{seed}"
        if not (run_dir / "best.json").is_file():
            continue
        best = json.loads((run_dir / "best.json").read_text())
        history = pd.read_csv(run_dir / "history.csv")
        final = pd.read_csv(run_dir / "final_population.csv")
        timing = timings.get(seed, {})
        rows.append({
            "seed": seed, "best_genotype": best["genotype"], "best_true_accuracy": best["true_accuracy"],
            "best_percentile": 100.0 * float((truth < best["true_accuracy"]).mean()),
            "final_population_max_accuracy": float(final["true_accuracy"].max()),
            "evaluated": len(history), "evaluated_max_accuracy": float(history["true_accuracy"].max()),
            "cpu_minutes": timing.get("cpu_minutes"), "wall_minutes": timing.get("wall_minutes")})
    return pd.DataFrame(rows)


def write_markdown(table: pd.DataFrame, args: argparse.Namespace, path: Path) -> None:
    """The summary as a Markdown page."""
    accuracy = table["best_true_accuracy"]
    lines = [
        "# NB201 search quality over seeds", "",
        "`python NAS_on_cifar10.py --space nb201 --ground-truth ... --seed K --device cpu --threads "
        f"{args.threads} {' '.join(args.extra)}` (every other setting at its default; run by "
        "`python experiments/nb201_seeds.py`). The best architecture is the search's pick (best.json; how it "
        "was picked is in config.json and best.json's picked_by); true accuracy = NB201 CIFAR-10 test accuracy "
        "after 200 epochs, looked up afterwards (never used by the search).", "",
        f"**Best architecture's true accuracy: {accuracy.mean():.2f} +- {accuracy.std(ddof=1):.2f}% "
        f"(mean +- std over {len(table)} seeds)**; TE-NAS {TE_NAS}%, NB201 optimum {OPTIMUM}%. "
        f"CPU time per seed {table['cpu_minutes'].mean():.1f} min (wall {table['wall_minutes'].mean():.1f} min, "
        "on a shared 2-core machine).", "",
        "| " + " | ".join(table.columns) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v).replace("|", "\\|")
                                       for v in row) + " |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    """Parse options, run the missing seeds one after another, write the CSV and Markdown summaries."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--population", type=int, default=None, help="default: the search's NB201 default")
    parser.add_argument("--offspring", type=int, default=None)
    parser.add_argument("--generations", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run (FNE_THREADS)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at the same time")
    parser.add_argument("--ground-truth", type=Path, default=GROUND_TRUTH)
    parser.add_argument("--summarise-only", action="store_true")
    parser.add_argument("extra", nargs="*", help="further NAS_on_cifar10.py options (after --)")
    args = parser.parse_args()
    (RESULTS / "nb201_seeds").mkdir(parents=True, exist_ok=True)
    timings = {}
    if args.summarise_only:
        for seed in args.seeds:
            timing_file = RESULTS / "nb201_seeds" / f"seed{seed}" / "experiment_timing.json"
            if timing_file.is_file():
                timings[seed] = json.loads(timing_file.read_text())
    else:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each seed is its own process
            for seed, timing in zip(args.seeds, pool.map(lambda s: run_seed(s, args), args.seeds), strict=True):
                timings[seed] = timing
                print(f"seed {seed} done: {timing}", flush=True)
    table = summarise(args.seeds, timings)
    if table.empty:
        sys.exit("no finished seeds to summarise")
    table.to_csv(RESULTS / "nb201_seeds.csv", index=False)
    write_markdown(table, args, RESULTS / "nb201_seeds.md")
    print(table.to_string(index=False))
    print(f"best true accuracy: {table['best_true_accuracy'].mean():.2f} +- "
          f"{table['best_true_accuracy'].std(ddof=1):.2f}% over {len(table)} seeds")


if __name__ == "__main__":
    main()
