"""plot_scores on DARTS cells: the reference text read without eval, the table's network, bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from fne.cli import run_command
from fne.commands.plot_scores import plot_scores
from fne.errors import DataError, GenotypeError
from fne.genotopheno.darts_text import parse_darts_text
from fne.genotopheno.genotype import PUBLISHED, format_genotype, parse, to_darts
from fne.genotopheno.network import build_network, count_parameters
from fne.genotopheno.spaces import get_space
from fne.study.bootstrap import bootstrap_interval, resample_indices
from fne.study.score_study import load_ground_truth

SPACE = get_space("darts")


def darts_text(darts, concat: str | None = None) -> str:
    """The text NAS-Bench-301 and NASLib print for a cell pair."""
    normal_concat = concat or str(list(darts.normal_concat))
    reduce_concat = concat or str(list(darts.reduce_concat))
    return (f"Genotype(normal={list(darts.normal)}, normal_concat={normal_concat}, reduce={list(darts.reduce)}, "
            f"reduce_concat={reduce_concat})")


def test_reference_text_reads_as_the_published_cell():
    for name, darts in PUBLISHED.items():
        assert parse_darts_text(darts_text(darts)) == darts, name
        assert parse_darts_text(darts_text(darts, concat="range(2, 6)")) == darts, name
    v2 = SPACE.table_genotype(darts_text(PUBLISHED["DARTS_V2"]))
    assert v2 == "s0s1-s0s1-s1k0-k0d2|m0m1-k2m1-m0k2-k2m1|16.32.64|2.2.2"  # NB301's 8 cells: 2 normal per stage
    assert SPACE.table_genotype(v2.replace("2.2.2", "1.1.1")) == v2  # an fne string: its cells, the table's depth
    assert SPACE.table_genotype(darts_text(PUBLISHED["DARTS_V2"]), layers=20).endswith("|6.6.6")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_every_sampled_cell_survives_the_text_round_trip(seed):
    genotype = SPACE.sample(np.random.default_rng(seed))
    text = darts_text(to_darts(parse(genotype)))
    assert SPACE.table_genotype(text) == genotype[:-5] + "2.2.2"


@pytest.mark.parametrize(("text", "problem"), [
    ("Genotype(normal=__import__('os').system('true'), normal_concat=[2], reduce=[], reduce_concat=[2])",
     "normal is not a literal"),
    ("Genotype(normal=[('sep_conv_3x3', 0)])", "missing normal_concat"),
    ("Genotype(normal=[], normal_concat=[], reduce=[], reduce_concat=[], extra=1)", "unknown field extra"),
    ("Genotype(normal=[('sep_conv_3x3', 0, 1)], normal_concat=[2], reduce=[], reduce_concat=[2])",
     "list of \\(op name, input index\\) pairs"),
    ("Genotype(normal=[(", "not valid Python syntax"),
    ("print(1)", "expected 4 sections"),  # not the DARTS form: read as an fne string
])
def test_malformed_reference_text_names_the_problem(text, problem):
    with pytest.raises(GenotypeError, match=problem):
        SPACE.table_genotype(text)


def test_a_cell_outside_the_space_names_the_row(tmp_path):
    bad = PUBLISHED["DARTS_V2"]._replace(normal=[("conv_7x7", 0), *PUBLISHED["DARTS_V2"].normal[1:]])
    path = tmp_path / "gt.csv"
    pd.DataFrame({"genotype": [darts_text(PUBLISHED["PDARTS"]), darts_text(bad)],
                  "val_accuracy": [94.0, 93.0]}).to_csv(path, index=False)
    with pytest.raises(GenotypeError, match=r"row 3, column 'genotype': .*unknown op 'conv_7x7'"):
        load_ground_truth(path, "genotype", "val_accuracy", SPACE)


def test_the_same_cell_twice_with_two_accuracies_is_refused(tmp_path):
    v2 = PUBLISHED["DARTS_V2"]
    path = tmp_path / "gt.csv"
    fne_string = format_genotype(parse(SPACE.table_genotype(darts_text(v2))))
    pd.DataFrame({"genotype": [darts_text(v2), darts_text(PUBLISHED["PDARTS"]), fne_string],
                  "val_accuracy": [94.0, 93.0, 92.0]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="rows 2 and 4 give .* two accuracies, 94 and 92"):
        load_ground_truth(path, "genotype", "val_accuracy", SPACE)


def test_bootstrap_interval_equals_the_plain_resampling_loop():
    rng = np.random.default_rng(5)
    accuracy = rng.normal(size=40)
    score = accuracy + rng.normal(size=40)
    score[3] = -math.inf  # an undefined score ranks worst
    indices = resample_indices(40, 200, seed=1)
    taus = [stats.kendalltau(np.nan_to_num(score[i], neginf=-1e300), accuracy[i]).statistic for i in indices]
    rhos = [stats.spearmanr(np.nan_to_num(score[i], neginf=-1e300), accuracy[i]).statistic for i in indices]
    expected = (*np.percentile(taus, [2.5, 97.5]), *np.percentile(rhos, [2.5, 97.5]))
    np.testing.assert_allclose(bootstrap_interval(score, accuracy, indices), expected, rtol=1e-12)
    with_gaps = score.copy()
    with_gaps[[0, 7]] = np.nan  # rows another method has no score for are left out of its figures
    kept = ~np.isnan(with_gaps)
    low_tau, high_tau, low_rho, high_rho = bootstrap_interval(with_gaps, accuracy, indices)
    full = stats.kendalltau(np.nan_to_num(with_gaps[kept], neginf=-1e300), accuracy[kept]).statistic
    assert low_tau < full < high_tau and low_rho < high_rho


def test_plot_scores_on_darts_cells_end_to_end(tmp_path):
    names = ["DARTS_V2", "PDARTS", "PC_DARTS"]
    path = tmp_path / "nb301.csv"
    texts = [darts_text(PUBLISHED[name]) for name in names]
    texts[2] = format_genotype(parse(SPACE.table_genotype(texts[2])))  # fne strings are welcome too
    pd.DataFrame({"genotype": texts, "val_accuracy": [94.2, 94.4, 94.5], "naslib_params": [3.3, 3.4, 3.6],
                  "naslib_nwot": [1.0, np.nan, 2.0], "other": [1, 2, 3]}).to_csv(path, index=False)
    out = tmp_path / "study"
    code = run_command(plot_scores, ["--space", "darts", "--ground-truth", str(path), "--width", "4", "--layers", "5",
                                     "--heuristics", "log_params,synflow", "--batch-size", "8", "--bootstrap", "20",
                                     "--out", str(out), "--no-progress"])
    assert code == 0
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.genotype) == texts  # each row's text as given
    assert list(scores.columns[:2]) == ["genotype", "val_accuracy"]
    assert {"naslib_params", "naslib_nwot"} <= set(scores.columns) and "other" not in scores.columns
    for text, canonical, params in zip(texts, scores.canonical, scores.params):
        assert canonical.endswith("|16.32.64|1.1.1")  # 5 cells: reductions at cells 2 and 4
        assert params == count_parameters(build_network(parse(SPACE.table_genotype(text, layers=5)), C=4))
    correlations = pd.read_csv(out / "correlations.csv").set_index("score")
    assert {"kendall_low", "kendall_high", "spearman_low", "spearman_high"} <= set(correlations.columns)
    assert correlations.loc["naslib_params", "spearman_rho"] == pytest.approx(1.0)  # as given: higher = better
    assert correlations.loc["naslib_nwot", "n"] == 2
    assert correlations.loc["params", "spearman_rho"] == pytest.approx(
        stats.spearmanr(scores.params, scores.val_accuracy).statistic)
