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

import torch

from fne.scoring.heuristics import HeuristicContext, PendingScore, ScoreUndefined, register_heuristic
from fne.scoring.probe_gradients import LossGradients


def zico_score(gradients: LossGradients) -> tuple[torch.Tensor, torch.Tensor]:
    """ZiCo (the paper's score, higher = better) of the splits' gradients, and whether no layer contributes.

    Per entry, mean |g| / std(g) over the splits (population std, as the reference's np.std), summed per
    weight over the entries whose std is not 0; the log of every non-zero layer sum is added up.
    """
    grads = gradients.flat
    std = grads.std(0, correction=0)
    ratio = torch.where(std != 0, grads.abs().mean(0) / std, 0.0)
    sizes = torch.tensor(gradients.sizes, device=grads.device)
    per_layer = torch.segment_reduce(ratio, "sum", lengths=sizes)
    contributing = per_layer != 0
    total = torch.where(contributing, per_layer, 1.0).log().sum()
    return total, ~contributing.any()


@register_heuristic("zico", needs=("loss_grads",))
def zico(context: HeuristicContext) -> PendingScore:
    """-ZiCo: minus the summed log inverse coefficient of variation of the loss gradients (two half-batches)."""
    if context.probe.loss_grads is None:
        raise ScoreUndefined("ZiCo needs the labels of the image batch; none were given")
    if not context.probe.loss_grads.sizes:
        raise ScoreUndefined("no layer's gradient reaches the loss")
    total, none_contribute = zico_score(context.probe.loss_grads)
    return PendingScore(-total, ((none_contribute, "no layer's gradient varies between the mini-batches"),))
