"""plot_scores' parts: ground-truth checks, nested samples, the resumable cache, correlation signs, the CLI."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from fne.cli import run_command
from fne.commands.plot_scores import plot_scores
from fne.data.cifar10 import heuristic_batch
from fne.errors import DataError, GenotypeError
from fne.genotopheno.spaces import get_space
from fne.scoring.fitness import FitnessConfig, score_genotypes
from fne.study.score_study import (
    ScoreCache,
    correlate,
    load_ground_truth,
    rank_combined,
    sample_rows,
    score_with_cache,
    settings_key,
)

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
]


@pytest.fixture()
def ground_truth(tmp_path):
    path = tmp_path / "gt.csv"
    pd.DataFrame({"arch_str": ARCHS, "cifar10_test": [94.37, 85.86, 10.0, 89.1]}).to_csv(path, index=False)
    return path


def test_ground_truth_errors_name_the_problem(tmp_path, ground_truth):
    space = get_space("nb201")
    with pytest.raises(DataError, match="does not exist"):
        load_ground_truth(tmp_path / "missing.csv", "arch_str", "cifar10_test", space)
    with pytest.raises(DataError, match="no column 'acc'"):
        load_ground_truth(ground_truth, "arch_str", "acc", space)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"arch_str": [ARCHS[0], "|conv~0|+|x|"], "cifar10_test": [1.0, 2.0]}).to_csv(bad, index=False)
    with pytest.raises(GenotypeError, match="row 3"):
        load_ground_truth(bad, "arch_str", "cifar10_test", space)


def test_samples_are_seeded_nested_prefixes():
    table = pd.DataFrame({"arch_str": [f"a{i}" for i in range(50)], "acc": np.arange(50.0)})
    small, large = sample_rows(table, 10, 3), sample_rows(table, 30, 3)
    assert list(small.arch_str) == list(large.arch_str[:10])
    assert not sample_rows(table, 10, 4).equals(small)
    assert len(sample_rows(table, 500, 3)) == 50


def test_cache_appends_resumes_and_skips_torn_lines(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = ScoreCache(path, "key1")
    cache.add("C+CC+kCC", {"ntk": 12.5, "grad_corr": math.inf})
    with path.open("a") as handle:
        handle.write('{"format": 1, "key": "key1", "genotype": "c+cc')  # interrupted mid-line
    reread = ScoreCache(path, "key1")
    assert reread.rows == {"C+CC+kCC": {"ntk": 12.5, "grad_corr": math.inf}}
    assert "C+CC+kCC" not in ScoreCache(path, "other settings")


def test_correlations_are_oriented_higher_is_better():
    accuracy = np.array([90.0, 80.0, 70.0, 60.0])
    scores = pd.DataFrame({"acc": accuracy, "ntk": [1.0, 2.0, 3.0, math.inf],  # minimised: perfect
                           "grad_corr": [4.0, 3.0, 2.0, 1.0],  # minimised, but exactly backwards
                           "params": [400, 300, 200, 100]})
    scores["rank_combined"] = rank_combined(scores, ["ntk", "grad_corr"])
    table = correlate(scores, "acc", ["ntk", "grad_corr", "params"]).set_index("score")
    assert table.loc["ntk", "kendall_tau"] == pytest.approx(1.0) and table.loc["ntk", "n_infinite"] == 1
    assert table.loc["grad_corr", "spearman_rho"] == pytest.approx(-1.0)
    assert table.loc["params", "spearman_rho"] == pytest.approx(1.0)
    assert np.allclose(scores.rank_combined, [5.0, 5.0, 5.0, 5.0])  # ranks 1..4 plus 4..1


def test_plot_scores_end_to_end_and_rerun_from_cache(tmp_path, ground_truth):
    out = tmp_path / "out"
    args = ["--ground-truth", str(ground_truth), "--sample", "0", "--batch-size", "6", "--width", "4",
            "--layers", "1", "--device", "cpu", "--out", str(out), "--no-progress",
            "--heuristics", "ntk,linear_regions,grad_corr", "--aggregate", "linear"]
    first = CliRunner().invoke(plot_scores, args)
    assert first.exit_code == 0, first.output
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns[:8]) == ["arch_str", "cifar10_test", "ntk", "linear_regions", "grad_corr", "params",
                                       "flops", "rank_combined"]
    assert list(scores.arch_str) == ARCHS
    none_row = scores.iloc[2]  # every path cut: worst on the Jacobian scores, ranked last
    assert math.isinf(none_row.ntk) and math.isinf(none_row.grad_corr)
    assert none_row.rank_combined == scores.rank_combined.max()
    correlations = pd.read_csv(out / "correlations.csv")
    assert list(correlations.columns[:3]) == ["score", "kendall_tau", "spearman_rho"]
    assert {"ntk", "linear_regions", "grad_corr", "params", "flops", "rank_combined"} <= set(correlations.score)
    assert (out / "scatter_ntk.png").stat().st_size > 0 and (out / "scores_vs_accuracy.png").exists()
    lines = (out / "score_cache.jsonl").read_text().splitlines()
    assert len(lines) == len(ARCHS) and all(json.loads(line)["genotype"] for line in lines)
    second = CliRunner().invoke(plot_scores, args)  # everything cached: nothing is rescored
    assert second.exit_code == 0
    assert len((out / "score_cache.jsonl").read_text().splitlines()) == len(ARCHS)
    assert pd.read_csv(out / "scores.csv").drop(columns="seconds").equals(scores.drop(columns="seconds"))


def test_plot_scores_bad_input_is_one_line(tmp_path, ground_truth, capsys):
    code = run_command(plot_scores, ["--ground-truth", str(tmp_path / "nope.csv"), "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ground-truth CSV") and err.count("\n") == 1
    code = run_command(plot_scores, ["--ground-truth", str(ground_truth), "--arch-column", "arch",
                                     "--out", str(tmp_path)])
    assert code == 2 and "no column 'arch'" in capsys.readouterr().err


def test_a_study_asking_for_more_scores_computes_only_the_missing_ones(tmp_path):
    space = get_space("nb201")
    images = heuristic_batch(None, 8, 0)
    config = FitnessConfig(batch_size=8, heuristics=("ntk",), C=4, layers=1, device="cpu")
    path = tmp_path / "cache.jsonl"
    key = settings_key(config, images, space.name)
    first = score_with_cache(space, ARCHS[:2], images, config, ScoreCache(path, key), progress=False)
    both = replace(config, heuristics=("ntk", "linear_regions"))
    assert settings_key(both, images, space.name) == key
    cache = ScoreCache(path, key)
    assert cache.missing(space.canonical(ARCHS[0]), both.heuristics) == ["linear_regions"]
    merged = score_with_cache(space, ARCHS[:2], images, both, cache, progress=False)
    assert list(merged["ntk"]) == list(first["ntk"])  # read back, not recomputed
    alone = score_genotypes(space, ARCHS[:2], images, both)
    assert list(merged["linear_regions"]) == list(alone["linear_regions"])
    assert all(not ScoreCache(path, key).missing(space.canonical(a), both.heuristics) for a in ARCHS[:2])
