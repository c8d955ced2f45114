"""Model size as scores: FLOPs and trainable parameters, bigger predicting better at init.

FLOPs are AZ-NAS's complexity score s_C (Lee & Ham, CVPR 2024, the fourth term of their aggregate);
#params and FLOPs are also the usual baselines of zero-cost proxy studies (Abdelfattah et al., ICLR 2021).
Minimised as -log. They cost nothing when the caller has counted them (fitness.py counts both for every
candidate and passes them in the context); otherwise they are counted here (FLOPs: one 1-image forward).
The names carry `log_`: score_genotypes' tables already have raw `params` and `flops` columns.
"""

from __future__ import annotations

import math

from fne.genotopheno.network import count_flops, count_parameters
from fne.scoring.heuristics import HeuristicContext, ScoreUndefined, register_heuristic


def negative_log_count(count: int | None, what: str) -> float:
    """-log(count); ScoreUndefined when the count is missing or not positive."""
    if count is None or count <= 0:
        raise ScoreUndefined(f"{what} count unavailable or zero ({count})")
    return -math.log(count)


@register_heuristic("log_flops")
def log_flops(context: HeuristicContext) -> float:
    """-log FLOPs of one forward of one image (AZ-NAS complexity)."""
    flops = context.flops
    if flops is None:
        flops = count_flops(context.model, (1, *context.images.shape[1:]))
    return negative_log_count(flops, "FLOP")


@register_heuristic("log_params")
def log_params(context: HeuristicContext) -> float:
    """-log of the number of trainable parameters (auxiliary head excluded)."""
    params = context.params if context.params is not None else count_parameters(context.model)
    return negative_log_count(params, "parameter")
