"""benchmarks/gpu_check.py --quick: every section runs tiny on the CPU and writes a README and sane CSVs.

One run of the command (a module fixture) serves every test; a second run of the whole-space section
checks that it continues from the score cache instead of scoring again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fne.genotopheno.spaces import get_space
from fne.scoring.fitness import DEFAULT_HEURISTICS, HEURISTICS

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"


def run_check(out: Path, ground_truth: Path, *extra: str) -> subprocess.CompletedProcess:
    """The check as a user runs it, on one CPU thread."""
    env = {**os.environ, "FNE_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out), "--ground-truth",
                           str(ground_truth), *extra], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """(output folder, ground-truth CSV, finished process) of one --quick run."""
    folder = tmp_path_factory.mktemp("gpu_check")
    space = get_space("nb201")
    rng = np.random.default_rng(0)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(10)))
    truth = folder / "truth.csv"
    pd.DataFrame({"arch_str": archs, "cifar10_test": np.linspace(60.0, 94.0, len(archs))}).to_csv(truth, index=False)
    return folder / "out", truth, run_check(folder / "out", truth)


def test_quick_run_succeeds_and_writes_the_readme(quick):
    out, _, done = quick
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    readme = (out / "README.md").read_text()
    assert "not GPU measurements" in readme and "gpu_check.py --quick --out" in readme
    for title in ("1. Correctness on CUDA", "2. Scoring speed", "3. Keeping the GPU busy", "4. The whole NB201 space",
                  "5. Training", "## Environment", "torch"):
        assert title in readme
    assert "FAILED" not in readme and "Traceback" not in readme


def test_cuda_tests_ran_on_the_cpu_and_passed(quick):
    tests = pd.read_csv(quick[0] / "cuda_tests.csv")
    assert len(tests) >= 4 and set(tests["outcome"]) == {"passed"}


def test_speed_covers_the_defaults_and_every_registered_score(quick):
    summary = pd.read_csv(quick[0] / "speed_summary.csv")
    cases = set(summary["case"])
    assert {"fwd+bwd", *HEURISTICS} <= cases
    assert any(case.startswith("defaults (") and all(name in case for name in DEFAULT_HEURISTICS) for case in cases)
    assert (summary["median_ms"] > 0).all() and np.isfinite(summary["ratio_geomean"]).all()
    assert summary.loc[summary["case"] == "fwd+bwd", "ratio_geomean"].item() == pytest.approx(1.0)


def test_busy_rows_match_in_process_scores(quick):
    busy = pd.read_csv(quick[0] / "busy.csv")
    assert len(busy) >= 2 and (busy["archs/s"] > 0).all()
    assert (busy["max rel. score difference"] <= 1e-9).all()  # one thread each: the same arithmetic


def test_space_section_scores_and_correlates(quick):
    out, truth, _ = quick
    summary = pd.read_csv(out / "space_summary.csv").iloc[0]
    assert summary["covered"] == summary["architectures"] == min(6, len(pd.read_csv(truth)))
    correlations = pd.read_csv(out / "space" / "correlations.csv").set_index("score")
    assert {*DEFAULT_HEURISTICS, "rank_combined"} <= set(correlations.index)
    assert correlations["spearman_rho"].dropna().between(-1, 1).all()
    assert len(pd.read_csv(out / "space" / "scores.csv")) == summary["covered"]


def test_training_section_measures_and_compares_three_cells(quick):
    speed = pd.read_csv(quick[0] / "training_throughput.csv")
    assert (speed["images/s"] > 0).all() and (speed["600-epoch recipe, hours"] > 0).all()
    comparison = pd.read_csv(quick[0] / "training_comparison.csv")
    assert len(comparison) == 3 and "DARTS_V2" in set(comparison["cell"])
    assert comparison["final val acc %"].between(0, 100).all() and (comparison["epochs"] == 1).all()


def test_space_section_continues_from_its_cache(quick):
    out, truth, _ = quick
    again = run_check(out, truth, "--sections", "space")
    assert again.returncode == 0, again.stderr[-2000:]
    summary = pd.read_csv(out / "space_summary.csv").iloc[0]
    assert summary["cached before"] == summary["covered"] and summary["scored now"] == 0
