"""AZ-NAS's three network-level scores (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network
Architecture Search", CVPR 2024; cvlab-yonsei/AZ-NAS, NB201/ZeroShotProxy/compute_az_nas_score.py).

The features are the outputs of the network's blocks: the stem, then every cell (and NB201's ResNet
blocks), recorded in one forward (probe_features.py). Per block output X (N, C, H, W), Sigma is the C x C
covariance over its N*H*W positions and p = eigenvalues / their sum:

    expressivity   s_E = sum over blocks of the entropy  -sum_k p_k log(p_k + 1e-8)   (isotropy of features)
    progressivity  s_P = min over consecutive blocks of (entropy of block l - entropy of block l-1)
    trainability   s_T = mean over consecutive block pairs of  2 - sigma_max - 1 / (sigma_max + 1e-6),
                   sigma_max the largest singular value of the cross-covariance of a random +-1 signal at
                   the block output and its gradient at the block input (1 is ideal: the block's backward
                   neither shrinks nor amplifies gradients)

AZ-NAS maximises each; fne minimises their negatives. The fourth AZ-NAS score, complexity (FLOPs), is
complexity.py's `log_flops`; aggregation.py combines the four as AZ-NAS does. Departures from the
reference code, each chosen to keep one shared probe: the batch is fne's real CIFAR-10 batch (the AZ-NAS
NB201 notebook feeds N(0, 1) noise), the network keeps fne's initialisation (AZ-NAS re-initialises with
Kaiming-normal fan-in), BatchNorm follows the probe's mode (AZ-NAS: train mode; "frozen", the default,
gives the same forward values and drops only the batch-statistics terms of the backward), and tiny
negative eigenvalues (float rounding of a PSD matrix) are clipped to 0 instead of turning the entropy NaN.
"""

from __future__ import annotations

import numpy as np

from fne.scoring.heuristics import HeuristicContext, ScoreUndefined, register_heuristic

ENTROPY_EPSILON = 1e-8  # AZ-NAS: log(p + 1e-8)
SINGULAR_EPSILON = 1e-6  # AZ-NAS: 1 / (sigma_max + 1e-6)


def eigen_entropy(covariance: np.ndarray) -> float:
    """Entropy -sum p log(p + 1e-8) of the normalised eigenvalues p of a covariance (AZ-NAS expressivity)."""
    eigenvalues = np.clip(np.linalg.eigvalsh(np.asarray(covariance, dtype=np.float64)), 0.0, None)
    total = eigenvalues.sum()
    if not np.isfinite(total) or total <= 0:
        raise ScoreUndefined("a block output is constant (zero feature covariance)")
    p = eigenvalues / total
    return float(np.sum(-p * np.log(p + ENTROPY_EPSILON)))


def block_entropies(context: HeuristicContext) -> np.ndarray:
    """The eigen-entropy of every block output, in forward order."""
    covariances = context.probe.features.block_covariances
    if not covariances:
        raise ScoreUndefined("no block produced a (N, C, H, W) feature map")
    return np.array([eigen_entropy(c) for c in covariances])


def block_trainability(cross: np.ndarray) -> float:
    """AZ-NAS's per-block score 2 - s - 1/(s + 1e-6), s the largest singular value of the cross-covariance."""
    if not np.all(np.isfinite(cross)):
        raise ScoreUndefined("non-finite gradient through a block")
    top = float(np.linalg.svd(cross, compute_uv=False).max()) if cross.size else 0.0
    return 2.0 - top - 1.0 / (top + SINGULAR_EPSILON)


@register_heuristic("az_expressivity", needs=("block_features",))
def az_expressivity(context: HeuristicContext) -> float:
    """-s_E: minus AZ-NAS expressivity, the summed eigen-entropy of the block outputs' feature covariances."""
    return -float(block_entropies(context).sum())


@register_heuristic("az_progressivity", needs=("block_features",))
def az_progressivity(context: HeuristicContext) -> float:
    """-s_P: minus AZ-NAS progressivity, the smallest entropy increase between consecutive block outputs."""
    entropies = block_entropies(context)
    if len(entropies) < 2:
        raise ScoreUndefined("progressivity needs at least two blocks")
    return -float(np.min(np.diff(entropies)))


@register_heuristic("az_trainability", needs=("block_grads",))
def az_trainability(context: HeuristicContext) -> float:
    """-s_T: minus AZ-NAS trainability, the mean over block pairs of 2 - sigma_max - 1/(sigma_max + 1e-6).

    An identity block (its backward returns the signal unchanged) makes AZ-NAS's score -inf: undefined here.
    """
    crosses = context.probe.features.block_cross
    if not crosses:
        raise ScoreUndefined("trainability needs at least two blocks")
    if any(cross is None for cross in crosses):
        raise ScoreUndefined("a block is the identity (AZ-NAS trainability -inf)")
    return -float(np.mean([block_trainability(cross) for cross in crosses]))
