"""ZiCo (Li et al., "ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on Gradients", ICLR 2023;
SLDGroup/ZiCo ZeroShotProxy/compute_zico.py, as run on NB201 by AZ-NAS's compute_zico_score.py).

For every Conv2d/Linear weight theta_l, g_l,b is the cross-entropy gradient on mini-batch b (fne: the
two halves of the probe batch, each with its own forward). With mean and standard deviation over the
mini-batches, elementwise,

    ZiCo = sum over layers of log( sum over the weight's entries with std != 0 of mean|g| / std(g) )

(a layer whose sum is 0 is skipped, as in the reference). ZiCo is maximised; fne minimises -ZiCo.
Needs the labels of the batch: without them the score is undefined.
"""

from __future__ import annotations

import numpy as np

from fne.scoring.heuristics import HeuristicContext, ScoreUndefined, register_heuristic


def zico_score(gradients: tuple[np.ndarray, ...]) -> float:
    """ZiCo of per-layer gradient arrays of shape (mini-batches, numel) (the paper's score, higher = better)."""
    total = 0.0
    contributing = 0
    for grads in gradients:
        std = grads.std(axis=0)  # numpy's population std, as the reference's np.std
        varying = std != 0
        ratio_sum = float(np.sum(np.abs(grads).mean(axis=0)[varying] / std[varying]))
        if ratio_sum == 0:
            continue
        total += np.log(ratio_sum)
        contributing += 1
    if contributing == 0:
        raise ScoreUndefined("no layer's gradient varies between the mini-batches")
    return total


@register_heuristic("zico", needs=("loss_grads",))
def zico(context: HeuristicContext) -> float:
    """-ZiCo: minus the summed log inverse coefficient of variation of the loss gradients (two half-batches)."""
    if context.probe.loss_grads is None:
        raise ScoreUndefined("ZiCo needs the labels of the image batch; none were given")
    return -zico_score(context.probe.loss_grads)
