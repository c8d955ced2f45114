"""Apply the finalists' stage to finished runs: what the current defaults pick from the same evaluations.

The finalists' stage runs after the last generation and changes nothing before it, so a run made before
the stage existed, with the same loop settings and seed, evaluated exactly what a new run evaluates. This
script re-picks such a run's best with the finalists' defaults of its space (or the settings given) and
writes <out>/finalists.csv and <out>/best.json, leaving the run itself untouched; CPU time is this
process's own.

    python experiments/repick_finalists.py experiments/results/nb201_seeds/seed0 \
        --out experiments/results/nb201_finalists/seed0
    python experiments/repick_finalists.py --summarise experiments/results/nb201_seeds/seed{0,1,2,3,4} \
        --out experiments/results/nb201_finalists   # -> nb201_finalists.md / .csv beside that folder
    python experiments/repick_finalists.py --redecide experiments/results/nb201_seeds/seed0 \
        --out experiments/results/nb201_finalists   # only the final decision again, by the current rule

The summary reads each run's own pick and CPU time (best.json, experiment_timing.json) and the re-pick's,
and looks the true accuracies up afterwards (the stage never reads them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import pandas as pd

from fne.evolution.individual import from_row
from fne.run import rundir
from fne.run.config import config_from_dict
from fne.run.final_pick import _plain, final_pick, picked_by_finalists
from fne.threads import apply_thread_rule
from fne.training.finalists import decide


def repick(run_dir: Path, out: Path, **settings: int | None) -> dict:
    """Re-pick `run_dir`'s best with the finalists' stage; returns best.json's record plus CPU/wall minutes."""
    saved = rundir.read_config(run_dir)
    config = config_from_dict(saved)
    fields = {"finalists": None, "finalist_C": None, "finalist_steps": 100, **{k: v for k, v in settings.items()
                                                                            if v is not None}}
    config = type(config)(**{**dataclasses.asdict(config), **fields})  # None: resolved per space
    history = rundir.read_table(run_dir / "history.csv")
    evaluated = [from_row(row, config.heuristics) for row in history.to_dict("records")]
    final_ids = set(rundir.read_table(run_dir / "final_population.csv")["id"])
    population = [ind for ind in evaluated if ind.id in final_ids]
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    final, best, finalists = final_pick(config, population, evaluated)
    used = resource.getrusage(resource.RUSAGE_SELF)
    best["cpu_minutes"] = (used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime) / 60
    best["wall_minutes"] = (time.perf_counter() - start) / 60
    out.mkdir(parents=True, exist_ok=True)
    if finalists is not None:
        rundir.atomic_write_csv(out / "finalists.csv", finalists)
    rundir.atomic_write_json(out / "best.json", best, strict=True)
    return best


def redecide(run_dir: Path, out: Path) -> dict:
    """Redo only the final decision of an earlier re-pick (same training) with the current `decide` rule."""
    table = rundir.read_table(out / "finalists.csv")
    last = table[table["steps"] == table["steps"].max()].sort_values("order")  # ties: the aggregate's order
    winner = int(last["order"].iloc[decide(last["tse"].to_numpy(), last["rank_combined"].to_numpy())])
    table["winner"] = table["order"] == winner
    row = table[table["winner"]].iloc[0]
    history = rundir.read_table(run_dir / "history.csv")
    record = history[history["id"] == row["id"]].iloc[0]
    old = json.loads((out / "best.json").read_text())
    keep = ("rank_combined_of", "cpu_minutes", "wall_minutes")
    best = {**{key: old[key] for key in keep}, **{key: _plain(value) for key, value in record.items()
                                                 if key in old and key not in keep}}
    best.update(picked_by=picked_by_finalists(len(table)), rank_combined=float(row["rank_combined"]),
                finalist_tse=float(row["tse"]), finalist_steps=int(row["steps"]), redecided=True)
    rundir.atomic_write_csv(out / "finalists.csv", table)
    rundir.atomic_write_json(out / "best.json", best, strict=True)
    return best


def summarise(run_dirs: list[Path], out: Path) -> pd.DataFrame:
    """One row per run: its own pick, the finalists' pick, their true accuracies and CPU minutes."""
    rows = []
    for run_dir in run_dirs:
        own = json.loads((run_dir / "best.json").read_text())
        new = json.loads((out / run_dir.name / "best.json").read_text())
        finalists = pd.read_csv(out / run_dir.name / "finalists.csv")
        history = pd.read_csv(run_dir / "history.csv").drop_duplicates("genotype")
        truth = dict(zip(history["genotype"], history["true_accuracy"], strict=True))
        timing = json.loads((run_dir / "experiment_timing.json").read_text())
        last = finalists[finalists["steps"] == finalists["steps"].max()].sort_values("tse")
        rows.append({"run": run_dir.name, "rank_combined_pick": own["genotype"],
                     "rank_combined_accuracy": own["true_accuracy"], "finalists_pick": new["genotype"],
                     "finalists_accuracy": new["true_accuracy"],
                     "best_finalist_accuracy": max(truth[g] for g in finalists["genotype"]),
                     "last_rung": " ".join(f"{g}:{truth[g]:.2f}" for g in last["genotype"]),
                     "search_cpu_minutes": timing["cpu_minutes"], "finalists_cpu_minutes": new["cpu_minutes"]})
    table = pd.DataFrame(rows)
    table.to_csv(out.with_suffix(".csv"), index=False)
    lines = ["# NB201: the finalists' stage on the five seed runs", "",
             "Each run is `python NAS_on_cifar10.py --space nb201 --seed K` (400 evaluations; "
             "experiments/results/nb201_seeds/), made before the finalists' stage existed; the stage runs after "
             "the last generation and changes nothing before it, so `python experiments/repick_finalists.py RUN "
             "--out ...` gives what a new run with the current defaults picks from the same evaluations "
             "(64 finalists at width 8, 1,984 training steps on the 1,000 shipped images, one thread). "
             "rank_combined_pick is the run's own pick (the smallest rank_combined over everything evaluated); "
             "last_rung lists the true accuracies of the finalists that trained the full 100 steps, fastest "
             "first. True accuracies are looked up afterwards; the stage never reads them.", "",
             "| " + " | ".join(table.columns) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    lines += ["| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |"
              for row in table.itertuples(index=False)]
    for column in ("rank_combined_accuracy", "finalists_accuracy", "search_cpu_minutes", "finalists_cpu_minutes"):
        lines.append(f"\n{column}: {table[column].mean():.2f} +- {table[column].std(ddof=1):.2f} (mean +- std)")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return table


def main() -> None:
    """Command line: one run directory, the output folder, optional finalist settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summarise", action="store_true", help="summarise the re-picks of the runs in --out")
    parser.add_argument("--redecide", action="store_true", help="redo only the final decision of the re-picks")
    parser.add_argument("--finalists", type=int)
    parser.add_argument("--finalist-steps", type=int)
    parser.add_argument("--finalist-width", type=int)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.redecide:
        for run_dir in args.run_dir:
            print(redecide(run_dir, args.out / run_dir.name)["genotype"])
        return
    if args.summarise:
        print(summarise(args.run_dir, args.out).to_string())
        return
    apply_thread_rule(args.threads)
    best = repick(args.run_dir[0], args.out, finalists=args.finalists, finalist_steps=args.finalist_steps,
                  finalist_C=args.finalist_width)
    print(json.dumps({k: best.get(k) for k in ("genotype", "true_accuracy", "finalist_tse", "cpu_minutes")}))


if __name__ == "__main__":
    main()
