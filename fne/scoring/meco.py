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

import torch

from fne.scoring.heuristics import HeuristicContext, PendingScore, ScoreUndefined, register_heuristic


def smallest_eigenvalues(correlations: torch.Tensor) -> torch.Tensor:
    """The smallest eigenvalue of each symmetric (B, C, C) matrix (MeCo's per-layer term), in one batched call."""
    return torch.linalg.eigvalsh(correlations)[:, 0]


@register_heuristic("meco", needs=("module_correlations",))
def meco(context: HeuristicContext) -> PendingScore:
    """-MeCo: minus the sum over hooked layers of lambda_min of the first image's channel correlation matrix."""
    features = context.probe.features
    if not features.module_correlations:
        raise ScoreUndefined("no layer produced a (N, C, H, W) feature map")
    terms = [smallest_eigenvalues(c) @ counts for c, counts in zip(features.module_correlations,
                                                                   features.module_counts, strict=True)]
    total = torch.stack(terms).sum()
    return PendingScore(-total, ((~torch.isfinite(total), "non-finite feature correlation"),))
