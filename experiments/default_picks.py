"""The default searches' picks at one and two threads: the same seed must give the same cell on any machine.

    python experiments/default_picks.py            # ~2 x 10 CPU-min (DARTS) + 2 x 45 CPU-min (NB201)
    python experiments/default_picks.py --out /tmp/picks --search-args "--generations 1 --finalist-steps 8"
    python experiments/default_picks.py --threads 1 & python experiments/default_picks.py --threads 2  # two cores

Runs the default DARTS search (`python NAS_on_cifar10.py`, seed 0) and the default NB201 search (`--space
nb201` with the shared NB201 ground truth, seed 0), each with `--threads 1` and `--threads 2` on the CPU,
checks that each space's two picks are the same genotype, and writes <out>/default_picks.json as
{"darts": "<genotype>", "nb201": "<genotype>"} (the file another CPU's picks are checked against) and
<out>/default_picks_runs.csv: one row per run with its pick and CPU minutes (the search process's user +
system time, summed over the attempts that ended: an attempt killed with this script is not counted). Each
run keeps its own directory under <out>/default_picks_runs/: a finished one (best.json written) is read
back, a killed one is resumed, so a kill loses no finished run. The folder records its --search-args and
refuses others, so that a quick check never mixes with the default runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
NB201_TABLE = REPO.parent / "shared" / "data" / "nb201" / "nb201_cifar10.csv"
SPACES = {"darts": [], "nb201": ["--space", "nb201", "--ground-truth", str(NB201_TABLE)]}
THREADS = (1, 2)
CPU_FILE = "default_picks_cpu.json"  # in each run directory: CPU seconds spent on it so far


def children_cpu_seconds() -> float:
    """User + system CPU seconds of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def search_command(space: str, threads: int, run_dir: Path, device: str, extra: list[str]) -> list[str]:
    """The NAS_on_cifar10.py command that starts this run, or resumes it when its directory holds a checkpoint."""
    base = [sys.executable, str(REPO / "NAS_on_cifar10.py"), "--threads", str(threads), "--no-progress"]
    if (run_dir / "checkpoint.json").exists():
        return [*base, "--resume", str(run_dir)]
    return [*base, *SPACES[space], "--seed", "0", "--device", device, *extra, "--out", str(run_dir)]


def run_once(space: str, threads: int, root: Path, device: str, extra: list[str]) -> dict:
    """One default search (cached when finished): its pick and CPU minutes."""
    run_dir = root / f"{space}-threads{threads}"
    cpu_path = run_dir / CPU_FILE
    if not (run_dir / "best.json").exists():
        if run_dir.exists() and not (run_dir / "checkpoint.json").exists():
            raise SystemExit(f"error: {run_dir} holds an unfinished run without a checkpoint; delete it to rerun")
        command = search_command(space, threads, run_dir, device, extra)
        print("running", shlex.join(command), flush=True)
        before = children_cpu_seconds()
        result = subprocess.run(command, cwd=REPO, check=False)
        spent = children_cpu_seconds() - before
        if run_dir.exists():  # CPU seconds of every attempt, so a resumed run reports its whole cost
            spent += json.loads(cpu_path.read_text())["cpu_seconds"] if cpu_path.exists() else 0.0
            cpu_path.write_text(json.dumps({"cpu_seconds": spent}))
        if result.returncode != 0:
            raise SystemExit(f"error: {space} at {threads} thread(s) exited with {result.returncode}; rerun to resume")
    best = json.loads((run_dir / "best.json").read_text())
    cpu = json.loads(cpu_path.read_text())["cpu_seconds"] if cpu_path.exists() else float("nan")
    return {"space": space, "threads": threads, "genotype": best["genotype"], "id": best.get("id"),
            "true_accuracy": best.get("true_accuracy"), "cpu_minutes": round(cpu / 60, 2),
            "run_dir": f"{root.name}/{run_dir.name}"}  # relative to <out>: the same on any machine


def main() -> None:
    """Command line: run (or read back) the four searches, compare the picks, write the two files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "experiments" / "results")
    parser.add_argument("--device", default="cpu", help="the thread counts only matter on the CPU")
    parser.add_argument("--search-args", default="", help="extra NAS_on_cifar10.py options (for a quick check)")
    parser.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    parser.add_argument("--threads", nargs="+", type=int, default=list(THREADS), choices=list(THREADS),
                        help="run only these thread counts (two processes can then share the machine); "
                             "the picks are compared, and the files written, once all four runs are done")
    args = parser.parse_args()
    if "nb201" in args.spaces and not NB201_TABLE.is_file():
        raise SystemExit(f"error: the NB201 search needs {NB201_TABLE} (the shared data beside the checkout)")
    root = args.out / "default_picks_runs"
    root.mkdir(parents=True, exist_ok=True)
    recorded = root / "search_args.json"
    if recorded.exists() and json.loads(recorded.read_text()) != args.search_args:
        raise SystemExit(f"error: {root} holds runs made with --search-args {json.loads(recorded.read_text())!r}; "
                         "give the same, or another --out")
    recorded.write_text(json.dumps(args.search_args))
    rows = [run_once(space, threads, root, args.device, shlex.split(args.search_args))
            for space in args.spaces for threads in args.threads]
    if sorted(args.threads) != list(THREADS):
        print(pd.DataFrame(rows).to_string(index=False))
        print("rerun without --threads to compare the picks and write the files, once every run is done")
        return
    table = pd.DataFrame(rows)
    table.to_csv(args.out / "default_picks_runs.csv", index=False)
    print(table.to_string(index=False))
    picks = {}
    for space, runs in table.groupby("space", sort=False):
        if runs["genotype"].nunique() != 1:
            raise SystemExit(f"error: {space} picks differ between thread counts: {runs['genotype'].tolist()}")
        picks[space] = runs["genotype"].iloc[0]
    (args.out / "default_picks.json").write_text(json.dumps(picks, indent=2) + "\n")
    print(json.dumps(picks, indent=2))


if __name__ == "__main__":
    main()
