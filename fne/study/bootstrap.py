"""Rank correlations of a score with accuracy, with percentile bootstrap intervals over the architectures.

Each resample draws the architectures with replacement (seeded) and recomputes Kendall's tau and Spearman's rho
of the same oriented score; the interval is the (2.5, 97.5) percentiles of those values. Spearman is
vectorised over the resamples (ranks, then Pearson row by row); Kendall uses scipy's tau-b per resample.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) row indices drawn with replacement from a generator seeded with `seed`."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _rowwise_spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    rx = stats.rankdata(x, axis=1)
    ry = stats.rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / denominator


def bootstrap_interval(score: np.ndarray, accuracy: np.ndarray, indices: np.ndarray
                       ) -> tuple[float, float, float, float]:
    """(tau low, tau high, rho low, rho high) of the score (higher predicts better) over the resampled rows.

    Rows where the score is NaN are left out of every resample (their index is dropped, not replaced).
    """
    score = np.asarray(score, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    keep = ~np.isnan(score)
    if not keep.all():
        position = np.cumsum(keep) - 1
        indices = [position[row[keep[row]]] for row in indices]
        score, accuracy = score[keep], accuracy[keep]
    # An undefined score (oriented to -inf) ranks below every finite one, as in the point estimate.
    score = np.nan_to_num(score, posinf=np.finfo(float).max, neginf=-np.finfo(float).max)
    with warnings.catch_warnings():  # a resample of a tiny table can be constant: its figure is NaN, left out
        warnings.simplefilter("ignore")
        taus = np.array([stats.kendalltau(score[row], accuracy[row]).statistic for row in indices])
        if isinstance(indices, list):
            rhos = np.array([stats.spearmanr(score[row], accuracy[row]).statistic for row in indices])
        else:
            rhos = _rowwise_spearman(score[indices], accuracy[indices])
    low, high = 100 * (1 - CONFIDENCE) / 2, 100 * (1 + CONFIDENCE) / 2
    if np.isnan(taus).all():
        return (np.nan,) * 4
    return (float(np.nanpercentile(taus, low)), float(np.nanpercentile(taus, high)),
            float(np.nanpercentile(rhos, low)), float(np.nanpercentile(rhos, high)))
