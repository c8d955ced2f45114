"""The study with the new scores: labels reach zico, AZ-NAS's aggregate is reported, the cache key follows labels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

from fne.commands.plot_scores import plot_scores
from fne.data.cifar10 import heuristic_labelled_batch
from fne.genotopheno.spaces import get_space
from fne.scoring.aggregation import AZ_NAS_SCORES, az_nas_log_rank
from fne.scoring.fitness import FitnessConfig
from fne.study.score_study import settings_key, validate

ARCHS = ["|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|",
         "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
         "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|avg_pool_3x3~2|",
         "|nor_conv_1x1~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|nor_conv_3x3~0|nor_conv_1x1~1|skip_connect~2|"]
HEURISTICS = (*AZ_NAS_SCORES, "zico")


def test_validate_reports_the_az_nas_aggregate_and_scores_zico(tmp_path):
    images, labels = heuristic_labelled_batch(None, 8, 0)
    table = pd.DataFrame({"arch_str": ARCHS, "acc": [90.0, 93.0, 85.0, 91.0]})
    config = FitnessConfig(batch_size=8, device="cpu", heuristics=HEURISTICS, C=4, layers=1)
    result = validate(get_space("nb201"), table, "arch_str", "acc", images, config, tmp_path, progress=False,
                      figures=False, labels=labels)
    scores = result.scores
    assert np.isfinite(scores["zico"]).all()
    assert np.allclose(scores["az_nas"], az_nas_log_rank(scores, AZ_NAS_SCORES), rtol=0, atol=0)
    assert "az_nas" in set(result.correlations.score)


def test_the_cache_key_follows_the_labels_but_not_the_heuristics():
    # One cache serves every heuristic set (rows gain scores as studies ask for more), so the key cannot know
    # whether a later study will need the labels: it follows them whenever they are given.
    images, labels = heuristic_labelled_batch(None, 8, 0)
    other = labels.roll(1)
    with_zico = FitnessConfig(batch_size=8, heuristics=("zico",))
    label_free = FitnessConfig(batch_size=8, heuristics=("meco",))
    assert settings_key(with_zico, images, "nb201", labels) != settings_key(with_zico, images, "nb201", other)
    assert settings_key(with_zico, images, "nb201", labels) == settings_key(label_free, images, "nb201", labels)
    assert settings_key(label_free, images, "nb201", labels) != settings_key(label_free, images, "nb201")


def test_plot_scores_passes_the_labels(tmp_path):
    ground_truth = tmp_path / "gt.csv"
    pd.DataFrame({"arch_str": ARCHS[:3], "cifar10_test": [90.0, 93.0, 85.0]}).to_csv(ground_truth, index=False)
    out = Path(tmp_path / "study")
    result = CliRunner().invoke(plot_scores, ["--ground-truth", str(ground_truth), "--out", str(out), "--sample", "0",
                                              "--batch-size", "8", "--width", "4", "--layers", "1", "--heuristics",
                                              "zico,meco", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out / "scores.csv")
    assert all(math.isfinite(v) for v in scores["zico"])
