"""MeCo (Jiang et al., "MeCo: Zero-Shot NAS with One Data and Single Forward Pass via Minimum Eigenvalue of
Correlation", NeurIPS 2023): the sum over layers of the smallest eigenvalue of the channel correlation
matrix of the layer's feature map on one image.

As the reference code (its `get_score` with measure "meco"), every module's output is hooked (containers
too, so a Sequential's output counts again next to its last layer's), the feature map is that of the
first image, a channel whose correlation is undefined (constant) gets a zero row and column, and the
full C x C matrix is used (not the "meco_opt" 8-channel subsample). fne reads the first image of the
probe's shared batch, normalised by the probe's BatchNorm mode (MeCo runs a batch of one image).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from fne.scoring.heuristics import HeuristicContext, ScoreUndefined, register_heuristic


def smallest_eigenvalues(correlations: tuple[np.ndarray, ...]) -> np.ndarray:
    """The smallest eigenvalue of each symmetric matrix (batched by size; MeCo's per-layer term)."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for index, matrix in enumerate(correlations):
        by_size[matrix.shape[0]].append(index)
    result = np.empty(len(correlations))
    for indices in by_size.values():
        stack = np.stack([correlations[i] for i in indices])
        result[indices] = np.linalg.eigvalsh(stack)[:, 0]
    return result


@register_heuristic("meco", needs=("module_correlations",))
def meco(context: HeuristicContext) -> float:
    """-MeCo: minus the sum over hooked layers of lambda_min of the first image's channel correlation matrix."""
    correlations = context.probe.features.module_correlations
    if not correlations:
        raise ScoreUndefined("no layer produced a (N, C, H, W) feature map")
    values = smallest_eigenvalues(correlations)
    if not np.all(np.isfinite(values)):
        raise ScoreUndefined("non-finite feature correlation")
    return -float(values.sum())
