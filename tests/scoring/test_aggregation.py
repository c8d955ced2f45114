"""The two aggregates against a hand-made table: TE-NAS's linear rank sum and AZ-NAS's log-rank sum."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata

from fne.errors import ConfigError
from fne.evolution.selection import rank_combined
from fne.scoring.aggregation import az_nas_log_rank, linear_rank_sum

# Minimised scores of four candidates; inf and NaN are undefined scores (rank worst, tied).
TABLE = pd.DataFrame({"a": [1.0, 2.0, 3.0, math.inf], "b": [3.0, 1.0, 2.0, math.nan], "c": [1.0, 1.0, 2.0, 2.0]})


def test_linear_rank_sum_by_hand():
    # a ranks 1 2 3 4, b ranks 3 1 2 4: sums 4 3 5 8.
    assert list(linear_rank_sum(TABLE, ["a", "b"])) == [4.0, 3.0, 5.0, 8.0]
    # Ties average: c ranks 1.5 1.5 3.5 3.5.
    assert list(linear_rank_sum(TABLE, ["a", "c"])) == [2.5, 3.5, 6.5, 7.5]


def test_linear_rank_sum_is_the_search_rank_combined():
    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(30, 3)), columns=["x", "y", "z"])
    table.iloc[[2, 7], 1] = math.inf
    table.iloc[5, 2] = math.nan
    assert np.array_equal(linear_rank_sum(table, list(table)), rank_combined(table, list(table)))


def test_az_nas_log_rank_by_hand():
    # Goodness ranks (m = 4 for the best): a 4 3 2 1, b 2 4 3 1; -sum log(r / 4).
    expected = [-math.log(1.0) - math.log(0.5), -math.log(0.75) - math.log(1.0),
                -math.log(0.5) - math.log(0.75), -2 * math.log(0.25)]
    assert np.allclose(az_nas_log_rank(TABLE, ["a", "b"]), expected, rtol=1e-15)
    # Ties average in goodness too: c's goodness ranks are 3.5 3.5 1.5 1.5.
    assert np.allclose(az_nas_log_rank(TABLE, ["c"]), -np.log(np.array([3.5, 3.5, 1.5, 1.5]) / 4), rtol=1e-15)


def test_az_nas_log_rank_is_the_notebooks_aggregate_negated():
    # AZ-NAS's notebook: sum over (maximised) scores of log(rankdata(score) / m), the best is its argmax.
    rng = np.random.default_rng(1)
    minimised = rng.normal(size=(25, 4))
    maximised = -minimised
    notebook = sum(np.log(rankdata(maximised[:, j]) / len(minimised)) for j in range(4))
    ours = az_nas_log_rank(minimised)
    assert np.allclose(ours, -notebook, rtol=1e-14)
    assert int(np.argmin(ours)) == int(np.argmax(notebook))


def test_empty_and_malformed():
    assert az_nas_log_rank(np.zeros((0, 2))).shape == (0,) and linear_rank_sum(np.zeros((0, 2))).shape == (0,)
    with pytest.raises(ConfigError):
        linear_rank_sum(TABLE, ["a", "missing"])
    with pytest.raises(ConfigError):
        az_nas_log_rank(np.zeros(3))
