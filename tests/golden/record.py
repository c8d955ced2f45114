"""Record (or, imported by the tests, re-run) the golden runs that pin fne's results across refactors.

    python tests/golden/record.py          # rewrites tests/golden/{darts,nb201,plot_scores}/

Recorded on main before the search core was restructured (issue 9): a tiny DARTS run and a tiny NB201
run, both with a DARTS tournament generation and real training-free scores on the shipped images, and
a tiny `plot_scores` study. The original three heuristics, TE-NAS's linear rank sum and the final pick among
the final population are named explicitly, so the records stay valid when the defaults change;
tests/golden/test_golden.py re-runs them and compares the tables.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

GOLDEN = Path(__file__).resolve().parent
GROUND_TRUTH = GOLDEN.parents[2] / "shared" / "data" / "nb201" / "nb201_cifar10.csv"
HEURISTICS = ("ntk", "linear_regions", "grad_corr")
TABLES = ("history.csv", "final_population.csv", "populations.csv", "pareto_front.csv", "tournaments.csv")
TIMING_COLUMNS = ("seconds", "evaluation_seconds", "tournament_seconds")
SEARCHES = {
    "darts": dict(space="darts", population=4, offspring=4, generations=2, tournament_every=2, tournament_size=2,
                  tournament_steps=3, tournament_C=4, tournament_images=64, batch_size=8, seed=3,
                  device="cpu", heuristics=HEURISTICS, aggregate="linear", final_pick="population", finalists=0,
                  tournament_prior=0.0, tournament_judge="alpha", tournament_tie_band=0.0),
    "nb201": dict(space="nb201", population=4, offspring=4, generations=2, tournament_every=2, tournament_size=2,
                  tournament_steps=3, tournament_C=4, tournament_images=64, batch_size=8, seed=5,
                  device="cpu", heuristics=HEURISTICS, aggregate="linear", final_pick="population", finalists=0,
                  tournament_prior=0.0, tournament_judge="alpha", tournament_tie_band=0.0),
}
PLOT_SCORES = dict(sample=6, seed=2, batch_size=8, heuristics=HEURISTICS, C=8, layers=1, aggregate="linear")


def run_search_case(name: str, out: Path) -> Path:
    """Run one golden search into `out` (a new folder) and return it."""
    from fne.run.search import SearchConfig, run_search

    ground_truth = str(GROUND_TRUTH) if name == "nb201" else None
    config = SearchConfig(**SEARCHES[name], ground_truth=ground_truth)
    run_search(config, out, progress=False)
    return out


def run_plot_scores_case(out: Path) -> Path:
    """Run the golden plot_scores study into `out` and return it."""
    from fne.data.cifar10 import heuristic_batch
    from fne.genotopheno.spaces import get_space
    from fne.scoring.fitness import FitnessConfig
    from fne.study.score_study import load_ground_truth, sample_rows, validate

    space = get_space("nb201")
    table = sample_rows(load_ground_truth(GROUND_TRUTH, "arch_str", "cifar10_test", space), PLOT_SCORES["sample"],
                        PLOT_SCORES["seed"])
    config = FitnessConfig(batch_size=PLOT_SCORES["batch_size"], seed=PLOT_SCORES["seed"], device="cpu",
                           heuristics=PLOT_SCORES["heuristics"], C=PLOT_SCORES["C"], layers=PLOT_SCORES["layers"])
    images = heuristic_batch(None, PLOT_SCORES["batch_size"], PLOT_SCORES["seed"])
    validate(space, table, "arch_str", "cifar10_test", images, config, out, progress=False, figures=False,
             aggregate=PLOT_SCORES["aggregate"])
    return out


def main() -> None:
    """Rewrite every golden record."""
    torch.set_num_threads(1)
    for name in SEARCHES:
        target = GOLDEN / name
        shutil.rmtree(target, ignore_errors=True)
        scratch = GOLDEN / f".{name}-run"
        shutil.rmtree(scratch, ignore_errors=True)
        run_search_case(name, scratch)
        target.mkdir()
        for table in (*TABLES, "best.json"):
            if (scratch / table).exists():
                shutil.copy(scratch / table, target / table)
        shutil.rmtree(scratch)
    target = GOLDEN / "plot_scores"
    shutil.rmtree(target, ignore_errors=True)
    scratch = GOLDEN / ".plot_scores-run"
    shutil.rmtree(scratch, ignore_errors=True)
    run_plot_scores_case(scratch)
    target.mkdir()
    for table in ("scores.csv", "correlations.csv"):
        shutil.copy(scratch / table, target / table)
    shutil.rmtree(scratch)
    print(f"recorded {', '.join(SEARCHES)} and plot_scores under {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    main()
