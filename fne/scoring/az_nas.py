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

from collections import defaultdict

import numpy as np
import torch

from fne.scoring.heuristics import HeuristicContext, PendingScore, ScoreUndefined, register_heuristic

ENTROPY_EPSILON = 1e-8  # AZ-NAS: log(p + 1e-8)
SINGULAR_EPSILON = 1e-6  # AZ-NAS: 1 / (sigma_max + 1e-6)
CONSTANT_BLOCK = "a block output is constant (zero feature covariance)"


def eigen_entropies(covariances: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropy -sum p log(p + 1e-8) of the normalised eigenvalues p of each (B, C, C) covariance, in float64.

    Also returns, per covariance, whether it is constant (zero or non-finite trace): its entropy is undefined.
    """
    eigenvalues = torch.linalg.eigvalsh(covariances.double()).clamp_(min=0.0)
    total = eigenvalues.sum(-1, keepdim=True)
    p = eigenvalues / total
    return -(p * torch.log(p + ENTROPY_EPSILON)).sum(-1), ~(torch.isfinite(total) & (total > 0)).squeeze(-1)


def eigen_entropy(covariance: np.ndarray | torch.Tensor) -> float:
    """The eigen-entropy of one covariance (AZ-NAS expressivity's term); ScoreUndefined when it is constant."""
    entropy, constant = eigen_entropies(torch.as_tensor(np.asarray(covariance, dtype=np.float64))[None])
    if bool(constant[0]):
        raise ScoreUndefined("a block output is constant (zero feature covariance)")
    return float(entropy[0])


def block_entropies(context: HeuristicContext) -> tuple[torch.Tensor, torch.Tensor]:
    """The eigen-entropy of every block output in forward order, and whether some block output is constant.

    Covariances of the same size are decomposed in one batched call; expressivity and progressivity share
    the result (the probe's memo).
    """
    features = context.probe.features
    covariances = features.block_covariances
    if not covariances:
        raise ScoreUndefined("no block produced a (N, C, H, W) feature map")
    if "block_entropies" not in features.memo:
        by_size: dict[int, list[int]] = defaultdict(list)
        for index, covariance in enumerate(covariances):
            by_size[covariance.shape[0]].append(index)
        parts = [eigen_entropies(torch.stack([covariances[i] for i in indices])) for indices in by_size.values()]
        order = [i for indices in by_size.values() for i in indices]
        entropies, constant = (torch.cat(column) if len(parts) > 1 else column[0] for column in zip(*parts))
        if order != sorted(order):  # back to forward order
            entropies = entropies[torch.tensor(order, device=entropies.device).argsort()]
        features.memo["block_entropies"] = (entropies, constant.any())
    return features.memo["block_entropies"]


def block_trainability(crosses: torch.Tensor) -> torch.Tensor:
    """AZ-NAS's per-block score 2 - s - 1/(s + 1e-6), s the largest singular value of each (B, m, n) matrix."""
    top = torch.linalg.matrix_norm(crosses.double(), ord=2)
    return 2.0 - top - 1.0 / (top + SINGULAR_EPSILON)


@register_heuristic("az_expressivity", needs=("block_features",))
def az_expressivity(context: HeuristicContext) -> PendingScore:
    """-s_E: minus AZ-NAS expressivity, the summed eigen-entropy of the block outputs' feature covariances."""
    entropies, constant = block_entropies(context)
    return PendingScore(-entropies.sum(), ((constant, CONSTANT_BLOCK),))


@register_heuristic("az_progressivity", needs=("block_features",))
def az_progressivity(context: HeuristicContext) -> PendingScore:
    """-s_P: minus AZ-NAS progressivity, the smallest entropy increase between consecutive block outputs."""
    entropies, constant = block_entropies(context)
    if len(entropies) < 2:
        raise ScoreUndefined("progressivity needs at least two blocks")
    return PendingScore(-torch.diff(entropies).min(), ((constant, CONSTANT_BLOCK),))


@register_heuristic("az_trainability", needs=("block_grads",))
def az_trainability(context: HeuristicContext) -> PendingScore:
    """-s_T: minus AZ-NAS trainability, the mean over block pairs of 2 - sigma_max - 1/(sigma_max + 1e-6).

    An identity block (its backward returns the signal unchanged) makes AZ-NAS's score -inf: undefined here.
    """
    features = context.probe.features
    crosses = features.block_cross
    if not crosses:
        raise ScoreUndefined("trainability needs at least two blocks")
    by_shape: dict[tuple[int, ...], list[torch.Tensor]] = defaultdict(list)
    for cross in crosses:
        by_shape[tuple(cross.shape)].append(cross)
    stacks = [torch.stack(group) for group in by_shape.values()]
    scores = torch.cat([block_trainability(stack) for stack in stacks])
    finite = torch.stack([torch.isfinite(stack).all() for stack in stacks]).all()
    undefined = [(~finite, "non-finite gradient through a block")]
    if features.block_identity is not None:
        undefined.insert(0, (features.block_identity, "a block is the identity (AZ-NAS trainability -inf)"))
    return PendingScore(-scores.mean(), tuple(undefined))
