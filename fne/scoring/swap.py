"""SWAP-Score (Peng et al., "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS", ICLR 2024;
pym1024/SWAP, src/metrics/swap.py): the number of distinct sample-wise activation patterns.

Every ReLU unit (every channel and position of every nn.ReLU with a 4-D input) has a binary pattern:
its sign over the first SWAP_SAMPLES images. The score is the number of distinct patterns among all
units, times the size regularisation f(P) = exp(-(P - mu)^2 / sigma) of the parameter count P (the
reference code's form, with sigma where a Gaussian would have 2 sigma^2), which favours models near mu.
fne minimises -log(count) + (P - mu)^2 / sigma, minus the log of the paper score: same order, no
underflow of f for models far from mu.

Departures from the reference, to share the probe's forward: the patterns are those of the first 16
images of fne's batch, whose BatchNorm statistics are the whole batch's (the reference feeds exactly 16
images), and the network keeps fne's initialisation for one draw (the reference re-initialises weights
with N(0, 1) and averages 32 draws; FitnessConfig.repeats averages draws here).
"""

from __future__ import annotations

from collections.abc import Callable

from fne.genotopheno.network import count_parameters
from fne.scoring.heuristics import HeuristicContext, PendingScore, ScoreUndefined, register_heuristic
from fne.scoring.probe_features import SWAP_SAMPLES

# P in millions of parameters. UNVERIFIED: the paper's values were not available to us (the reference
# code leaves mu and sigma to the caller); these are the SWAP class defaults of a public zero-cost-proxy
# fork of the reference code. Other windows: register_heuristic("swap_...", ...)(swap_heuristic(mu, sigma)).
SWAP_MU_MILLIONS = 1.5
SWAP_SIGMA = 1.5


def swap_log_regularisation(params: int, mu: float = SWAP_MU_MILLIONS, sigma: float = SWAP_SIGMA) -> float:
    """log f(P) = -(P - mu)^2 / sigma with P the parameter count in millions (SWAP's size regularisation)."""
    if sigma <= 0:
        raise ValueError(f"SWAP sigma={sigma} must be positive")
    return -((params / 1e6 - mu) ** 2) / sigma


def swap_heuristic(mu: float | None = SWAP_MU_MILLIONS, sigma: float = SWAP_SIGMA
                   ) -> Callable[[HeuristicContext], PendingScore]:
    """A SWAP heuristic with its own window (mu None: unregularised), e.g. for register_heuristic("swap_1m", ...)."""

    def score(context: HeuristicContext) -> PendingScore:
        features = context.probe.features
        if features.relu_patterns is None or features.relu_units < 1:
            raise ScoreUndefined("the network has no ReLU with a (N, C, H, W) input")
        regularisation = 0.0
        if mu is not None:
            params = context.params if context.params is not None else count_parameters(context.model)
            regularisation = swap_log_regularisation(params, mu, sigma)
        return PendingScore(-(features.relu_patterns.double().log() + regularisation))

    score.__doc__ = (f"-log SWAP: distinct ReLU sign patterns over the first {SWAP_SAMPLES} images"
                     + (f", size window mu={mu} M params, sigma={sigma}" if mu is not None else ""))
    return score


swap = register_heuristic("swap", needs=("relu_patterns",))(swap_heuristic())
