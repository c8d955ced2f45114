"""Section 1: run the CUDA-marked tests (tests/test_cuda.py) in a child pytest and record each outcome."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

import pandas as pd

from .common import REPO, Check, Section, markdown_table, write_csv

TITLE = "1. Correctness on CUDA"

TEST_FILE = "tests/test_cuda.py"
TIMEOUT_S = 600


def parse_junit(path) -> pd.DataFrame:
    """One row per test case of a JUnit XML report: test, outcome, seconds, message."""
    rows = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (node.get("message") or "").splitlines()[0][:200] if node.get("message") else ""
                break
        rows.append({"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0.0),
                     "message": message})
    return pd.DataFrame(rows, columns=["test", "outcome", "seconds", "message"])


def run(check: Check) -> Section:
    """pytest -m cuda on tests/test_cuda.py; on a CPU (--quick) the same bodies run tiny on the CPU."""
    section = Section(TITLE)
    report = check.out / "cuda_tests.junit.xml"
    command = [sys.executable, "-m", "pytest", "-m", "cuda", TEST_FILE, "-p", "no:cacheprovider", "-q",
               f"--junitxml={report}"]
    env = dict(os.environ)
    if not check.cuda:
        env["FNE_CUDA_TESTS_ON_CPU"] = "1"  # --quick: exercise the test bodies without a GPU
        env.setdefault("FNE_THREADS", "1")
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
        tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or [""]
    except subprocess.TimeoutExpired:
        tail = [f"pytest did not finish within {TIMEOUT_S} s"]
    elapsed = time.perf_counter() - started
    table = parse_junit(report) if report.exists() else pd.DataFrame(columns=["test", "outcome", "seconds", "message"])
    section.files.append(write_csv(table, check, "cuda_tests.csv"))
    counts = table["outcome"].value_counts().to_dict()
    bad = counts.get("failed", 0) + counts.get("error", 0)
    section.status = "FAILED" if bad or table.empty else "ok"
    where = "on the GPU" if check.cuda else "on the CPU (FNE_CUDA_TESTS_ON_CPU=1: no GPU here, tiny networks)"
    section.markdown = "\n\n".join([
        f"`{' '.join(['python', *command[1:-1]])}` ran {where} in {elapsed:.0f} s: "
        + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) + f". pytest said: `{tail[0]}`",
        "Tolerances (tests/test_cuda.py): a score on CUDA equals the CPU's to a relative 1e-6 in float64 and 2e-2 in "
        "float32 with TF32 off; exported networks' outputs to 1e-4.",
        markdown_table(table) if not table.empty else "No test report was written (see the pytest line above).",
    ])
    return section
