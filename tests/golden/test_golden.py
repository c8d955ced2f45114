"""Golden runs: the restructured code reproduces the tables recorded before the restructure (timing aside).

Every recorded decision column (and every recorded row of correlations.csv) must come back identical and
every float within its class's tolerance (tests/golden/tolerance.py: untrained scores, trained quantities),
so the tests pass on any x86 CPU; columns or correlation rows that later features add (e.g. the other rank
aggregate) are allowed beside them. Each case runs at one thread (as recorded) and at two: another thread
count reorders float reductions as another CPU does, so a tolerance that holds on one machine only fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.golden.record import (
    GOLDEN,
    GROUND_TRUTH,
    SEARCHES,
    TABLES,
    TIMING_COLUMNS,
    run_plot_scores_case,
    run_search_case,
)
from tests.golden.tolerance import (
    TRAINED,
    UNTRAINED,
    assert_close,
    assert_same_table,
    reason_text,
    smallest_gap_over_bound,
    tolerance_of,
)
from tests.shared_data import NB201_TABLE, require

THREADS = (1, 2)  # as recorded, and another reduction order


def test_the_golden_ground_truth_is_the_shared_nb201_table():
    """record.py (also a script, without the tests package on its path) names the file tests/shared_data.py does."""
    assert GROUND_TRUTH == NB201_TABLE


@pytest.fixture
def threads(request):
    """Run the test body at request.param torch threads, then restore the suite's count."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])
    return frame[sorted(frame.columns)]


def _same_table(recorded: Path, produced: Path, key: str | None = None) -> None:
    assert produced.exists(), f"{produced.name} was not written"
    old, new = _comparable(pd.read_csv(recorded)), _comparable(pd.read_csv(produced))
    if key is not None:  # rows identified by a key column (added rows allowed)
        new = new.set_index(key).loc[old[key]].reset_index()[old.columns]
    missing = set(old.columns) - set(new.columns)
    assert not missing, f"{produced.name} lost columns {sorted(missing)}"
    assert_same_table(new[old.columns], old, produced.name)


@pytest.mark.parametrize("threads", THREADS, indirect=True)
@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_search_reproduces_the_golden_run(name, threads, tmp_path):
    if name == "nb201":  # looks up true accuracies in the NB201 table
        require(GROUND_TRUTH)
    run_dir = run_search_case(name, tmp_path / name)
    for table in TABLES:
        _same_table(GOLDEN / name / table, run_dir / table)
    recorded, produced = (json.loads((d / "best.json").read_text()) for d in (GOLDEN / name, run_dir))
    for best in (recorded, produced):
        best.pop("seconds")
    assert produced.keys() == recorded.keys()
    for key, value in recorded.items():
        if isinstance(value, float):
            assert_close(produced[key], value, key, "best.json")
        else:
            assert produced[key] == value, key


@pytest.mark.parametrize("threads", THREADS, indirect=True)
def test_plot_scores_reproduces_the_golden_study(threads, tmp_path):
    require(GROUND_TRUTH)  # the study samples its architectures from the NB201 table
    out = run_plot_scores_case(tmp_path / "study")
    _same_table(GOLDEN / "plot_scores" / "scores.csv", out / "scores.csv")
    _same_table(GOLDEN / "plot_scores" / "correlations.csv", out / "correlations.csv", key="score")


DECISION_SCORES = ("ntk", "linear_regions", "grad_corr", "synflow", "crowding")


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_golden_cases_hold_no_near_ties(name):
    """Two candidates a generation compares never lie within twice their score's tolerance of each other."""
    history = pd.read_csv(GOLDEN / name / "history.csv")
    populations = pd.read_csv(GOLDEN / name / "populations.csv")
    for frame, by in ((history, "generation"), (populations, "population_generation")):
        for column in (c for c in DECISION_SCORES if c in frame.columns):
            for generation, rows in frame.groupby(by):
                margin = smallest_gap_over_bound(rows[column], column)
                assert margin > 2, f"{name} {by} {generation}: {column} has a near tie ({margin:.1f} bounds apart)"


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_golden_tournaments_hold_no_near_ties(name):
    """A tournament's winner leads the next live alpha by more than twice the trained tolerance of both."""
    tournaments = pd.read_csv(GOLDEN / name / "tournaments.csv")
    assert len(tournaments), f"{name} records no tournament: the trained tolerance would go untested"
    for row in tournaments.itertuples():
        alphas = np.asarray(json.loads(row.alphas), dtype=float)
        live = np.flatnonzero(np.isfinite(alphas))
        ordered = live[np.argsort(-alphas[live], kind="stable")]
        lead, second = alphas[ordered[0]], alphas[ordered[1]]
        assert lead - second > 2 * TRAINED.bound("alphas", max(abs(lead), abs(second))), \
            f"{name} tournament {row.generation}.{row.tournament}: alphas {alphas.tolist()} are a near tie"


def test_tolerance_flags_a_difference_beyond_it():
    """The comparison is not vacuous: a score or a loss off by 10x its class's bound, or a changed id, fails."""
    old = pd.DataFrame({"id": [1, 2], "genotype": ["a", "b"], "grad_corr": [10.0, 20.0], "train_loss": [2.0, 2.5],
                        "alphas": ["[0.1, -0.1]", "[0.0, 0.0]"]})
    assert tolerance_of("grad_corr") is UNTRAINED and tolerance_of("alphas") is tolerance_of("tse") is TRAINED
    within = old.assign(grad_corr=[10.0 * (1 + UNTRAINED.rtol / 2), 20.0], train_loss=[2.0 + TRAINED.atol / 2, 2.5],
                        alphas=[f"[{0.1 + TRAINED.atol / 2}, -0.1]", "[0.0, 0.0]"])
    assert_same_table(within, old, "t")
    for changed in (old.assign(grad_corr=[10.0 * (1 + 10 * UNTRAINED.rtol), 20.0]), old.assign(id=[1, 3]),
                    old.assign(train_loss=[2.0 * (1 + 10 * TRAINED.rtol) + 10 * TRAINED.atol, 2.5]),
                    old.assign(alphas=["[0.1, -0.1]", f"[{10 * TRAINED.atol}, 0.0]"]),
                    old.assign(grad_corr=[np.nan, 20.0])):
        with pytest.raises(AssertionError):
            assert_same_table(changed, old, "t")


def test_undefined_reasons_compare_without_the_floats_they_quote():
    """Which rows are undefined and why must match; the noise value a reason quotes may differ (another LAPACK)."""
    reason = "ntk: NTK singular (lambda_min/lambda_max = {}); linear_regions: {} samples share a pattern"
    old = pd.DataFrame({"id": [1, 2], "error": [reason.format("-5.78e-17", 3), np.nan]})
    assert_same_table(old.assign(error=[reason.format("-6.98e-17", 3), np.nan]), old, "t")
    for changed in (old.assign(error=[reason.format("-5.78e-17", 4), np.nan]),  # a count is not noise
                    old.assign(error=["grad_corr: input Jacobian is constant", np.nan]),
                    old.assign(error=[np.nan, np.nan]), old.assign(error=[reason.format("1.0", 3), "x"])):
        with pytest.raises(AssertionError):
            assert_same_table(changed, old, "t")
    assert reason_text("a = -5.78e-17, b = 2.5, c = 1e-3, 64 samples") == "a = <x>, b = <x>, c = <x>, 64 samples"


def test_ill_conditioned_scores_have_their_own_bound():
    """The NTK condition number and crowding get the wider untrained rtol; the other scores keep the tight one."""
    assert UNTRAINED.bound("ntk", 10.0) == pytest.approx(1e-9 + 1e-2)
    assert UNTRAINED.bound("linear_regions", 10.0) == pytest.approx(1e-9 + 3e-4)
    assert smallest_gap_over_bound([1.0, 1.0 + 5e-5], "grad_corr") == pytest.approx(5e-5 / (1e-9 + 3e-5 * 1.00005),
                                                                                  rel=1e-6)


def test_golden_study_holds_no_near_ties():
    """The study's correlations rank the scores: no two of its cells lie within twice their score's tolerance."""
    scores = pd.read_csv(GOLDEN / "plot_scores" / "scores.csv")
    for column in (c for c in DECISION_SCORES if c in scores.columns):
        assert smallest_gap_over_bound(scores[column], column) > 2, column
