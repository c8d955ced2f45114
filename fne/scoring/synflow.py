"""Synflow (Tanaka et al., "Pruning neural networks without any data by iteratively conserving synaptic
flow", NeurIPS 2020), as the zero-cost proxy of Abdelfattah et al. ("Zero-Cost Proxies for Lightweight
NAS", ICLR 2021; NASLib naslib/predictors/utils/pruners/measures/synflow.py, measure "synflow", bn=False).

Every parameter replaced by its absolute value, BatchNorm bypassed, one all-ones input, in float64:
R = sum of the outputs, and synflow = sum over Conv2d/Linear weights of |theta * dR/dtheta|. The pass is
its own (probe_gradients.synflow_by_layer), on one image. Synflow spans many orders of magnitude;
fne minimises -log(synflow) (same order as the paper's score); a zero synflow (no path from input to
output) is undefined.
"""

from __future__ import annotations

import math

import numpy as np

from fne.scoring.heuristics import HeuristicContext, ScoreUndefined, register_heuristic


@register_heuristic("synflow", needs=("synflow",))
def synflow(context: HeuristicContext) -> float:
    """-log synflow: minus the log of sum |theta * dR/dtheta| over Conv2d/Linear weights (abs weights, ones input)."""
    total = float(np.sum(context.probe.synflow))
    if not math.isfinite(total):
        raise ScoreUndefined(f"synflow is {total} (overflow in float64)")
    if total <= 0:
        raise ScoreUndefined("synflow is zero: no path carries signal from input to output")
    return -math.log(total)
