"""Combining several minimised scores of a population into one, lower = better.

    linear_rank_sum    TE-NAS's combination (Chen et al., ICLR 2021): sum over scores of each candidate's
                       rank (1 = best, ties averaged); what fne.evolution.selection.rank_combined computes
    az_nas_log_rank    AZ-NAS's non-linear ranking aggregation (Lee & Ham, CVPR 2024, eq. 8; their NB201
                       notebook): sum over scores of log(r_i / m), with r_i the candidate's rank among m
                       candidates in ascending order of goodness (r = m for the best, 1 for the worst),
                       maximised; fne returns its negative, -sum log(r_i / m) >= 0, 0 only for a candidate
                       that is best on every score

The log-rank sum punishes a candidate that is poor on any one score far more than a linear rank sum:
log(1/m) is very negative while the best ranks all contribute about 0.

Non-finite scores (+inf for an undefined score, NaN, -inf) rank worst, tied with each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from fne.errors import ConfigError

# AZ-NAS's four scores, as fne names them (az_nas.py, complexity.py).
AZ_NAS_SCORES = ("az_expressivity", "az_progressivity", "az_trainability", "log_flops")


def score_matrix(scores: pd.DataFrame | np.ndarray, columns: Sequence[str] | None = None) -> np.ndarray:
    """(n, m) float matrix of minimised scores with every non-finite entry made +inf (the worst)."""
    if isinstance(scores, pd.DataFrame):
        if columns is None:
            raise ConfigError("aggregating a DataFrame needs the score column names")
        missing = [name for name in columns if name not in scores.columns]
        if missing:
            raise ConfigError(f"scores lack column(s) {missing}; have {list(scores.columns)}")
        F = scores[list(columns)].to_numpy(dtype=float, copy=True)
    else:
        F = np.array(scores, dtype=float, copy=True)
    if F.ndim != 2:
        raise ConfigError(f"scores must be a 2-D (candidates x scores) array, got shape {F.shape}")
    F[~np.isfinite(F)] = np.inf
    return F


def ascending_ranks(F: np.ndarray) -> np.ndarray:
    """Per column, each candidate's rank with 1 = best (smallest), ties averaged."""
    return np.column_stack([rankdata(F[:, j], method="average") for j in range(F.shape[1])]) if F.size else F


def linear_rank_sum(scores: pd.DataFrame | np.ndarray, columns: Sequence[str] | None = None) -> np.ndarray:
    """TE-NAS: sum over scores of each candidate's rank (1 = best, ties averaged); lower = better."""
    F = score_matrix(scores, columns)
    return ascending_ranks(F).sum(axis=1) if len(F) else np.zeros(0)


def az_nas_log_rank(scores: pd.DataFrame | np.ndarray, columns: Sequence[str] | None = None) -> np.ndarray:
    """AZ-NAS: -sum over scores of log(r / m), r = m for the best candidate and 1 for the worst; lower = better."""
    F = score_matrix(scores, columns)
    m = len(F)
    if m == 0:
        return np.zeros(0)
    goodness_ranks = m + 1 - ascending_ranks(F)  # AZ-NAS ranks the maximised score ascending
    return -np.log(goodness_ranks / m).sum(axis=1)


AGGREGATES = {"linear": linear_rank_sum, "az_nas": az_nas_log_rank}
