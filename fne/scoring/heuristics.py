"""The training-free heuristics: a registry by decorator, the shared network probe, and the three scores.

Every score is MINIMISED (lower predicts higher accuracy). A score that is undefined for a network
(singular kernel, NaN, a constant Jacobian) is +inf, the worst, and the reason is recorded, so a search
never crashes on a degenerate candidate.

The three scores defined here share one probe of the network on a batch of N real images (see
`probe_network`): one forward + one backward, in which BatchNorm uses the batch's own statistics held
constant ("frozen", see jacobians.py), gives the ReLU codes, the empirical NTK and the input Jacobian.
The other built-in scores (AZ-NAS, MeCo, SWAP, ZiCo, synflow, complexity) live in one file each and ask
the same probe for what they measure (probe_features.py, probe_gradients.py); fitness.py imports them.
Users add a score with `@register_heuristic("name", needs=(...))` on `fn(context) -> float`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from fne.registry import Registry
from fne.scoring.jacobians import (
    ACTIVATION_OVERHEAD,
    NORM_MODES,
    HammingKernel,
    activation_bytes_per_sample,
    batch_norm_mode,
    input_jacobian,
    is_out_of_memory,
    ntk_gram_loop,
    ntk_gram_vmap,
)
from fne.scoring.per_sample_grads import UnsupportedModel, ntk_by_layer_hooks
from fne.scoring.probe_features import FEATURE_NEEDS, FeatureProbe, probe_features
from fne.scoring.probe_gradients import LossGradients, loss_gradients, synflow_by_layer

log = logging.getLogger(__name__)

# What a heuristic may ask the probe for: the per-sample Jacobian kinds, then one hooked forward's
# (probe_features.FEATURE_NEEDS), then the passes of their own (probe_gradients.py).
NEEDS = ("ntk", "hamming", "input_grads", *FEATURE_NEEDS, "loss_grads", "synflow")
LABEL_NEEDS = frozenset({"loss_grads"})  # undefined without the labels of the batch
NTK_METHODS = ("auto", "hooks", "vmap", "loop")
GRAD_CORR_EPSILON = 1e-5  # Mellor et al. v1 `eval_score`: k = 1e-5 keeps log and 1/v finite


class ScoreUndefined(Exception):
    """A heuristic is undefined for this network (e.g. a singular kernel); the score becomes +inf."""


@dataclass(frozen=True)
class ProbeSettings:
    """How a network is probed: BatchNorm semantics, NTK implementation and memory budget."""

    batch_norm: str = "frozen"
    ntk_method: str = "auto"
    memory_budget_mib: float = 2048.0


@dataclass(frozen=True)
class NetworkProbe:
    """Quantities measured once per network and shared by the heuristics (None when not asked for)."""

    ntk_kernel: np.ndarray | None = None  # float64 N x N, K = J J^T of per-sample parameter gradients
    hamming_kernel: torch.Tensor | None = None  # float64 N x N on the probe's device, ReLU codes samples share
    relu_units: int = 0
    input_grads: np.ndarray | None = None  # float64 N x D, d(sum of sample i's logits)/d(x_i)
    ntk_method: str = ""  # which implementation produced the NTK
    features: FeatureProbe | None = None  # the hooked forward's measurements (probe_features.py)
    loss_grads: LossGradients | None = None  # ZiCo: the weights' loss gradients per split; None without labels
    synflow: np.ndarray | None = None  # per Conv2d/Linear weight, sum |theta * dR/dtheta|


@dataclass(frozen=True)
class PendingScore:
    """A score still on the device: its 0-dim value, and 0-dim bool conditions under which it is undefined.

    Heuristics may return one instead of a float, so that every score of a network reaches the host in one
    transfer (fitness.score_network); the first true condition's reason is recorded, as a ScoreUndefined's.
    """

    value: torch.Tensor
    undefined: tuple[tuple[torch.Tensor, str], ...] = ()


@dataclass(frozen=True)
class HeuristicContext:
    """What a heuristic sees: the network, the batch, the settings and the shared probe."""

    model: nn.Module
    images: torch.Tensor
    settings: ProbeSettings
    probe: NetworkProbe
    labels: torch.Tensor | None = None  # class of each image, for the scores that need a loss
    params: int | None = None  # trainable parameters and FLOPs, when the caller has counted them
    flops: int | None = None


@dataclass(frozen=True)
class Heuristic:
    """One registered score: its name, function and the probe quantities it needs."""

    name: str
    fn: Callable[[HeuristicContext], float]
    needs: frozenset[str] = field(default_factory=frozenset)


HEURISTICS: Registry[Heuristic] = Registry("heuristic")


def register_heuristic(name: str, needs: Iterable[str] = ()) -> Callable:
    """Decorator: register `fn(context) -> float` (minimised) under `name`; refuses duplicate names."""
    needs = frozenset(needs)
    unknown = needs - set(NEEDS)
    if unknown:
        raise ValueError(f"heuristic {name!r}: unknown needs {sorted(unknown)}; known: {NEEDS}")

    def decorate(fn: Callable[[HeuristicContext], float]) -> Callable[[HeuristicContext], float]:
        HEURISTICS.add(name, Heuristic(name, fn, needs), needs=needs)  # refuses a duplicate name
        return fn

    return decorate


def unregister_heuristic(name: str) -> None:
    """Remove a registered heuristic (mainly for tests and user plug-ins)."""
    HEURISTICS.unregister(name)


# ---------------------------------------------------------------- the shared probe
def probe_network(model: nn.Module, images: torch.Tensor, needs: Iterable[str],
                  settings: ProbeSettings = ProbeSettings(), activation_bytes: int | None = None, *,
                  labels: torch.Tensor | None = None, seed: int = 0) -> NetworkProbe:
    """Measure what the heuristics need in as few passes as possible (one forward+backward by default).

    `activation_bytes` (per sample, see jacobians.ActivationBytes) saves the forward that estimates it;
    `labels` (one class per image) enable the loss-based kinds, `seed` draws the probe's random signals.
    """
    needs = frozenset(needs)
    if settings.batch_norm not in NORM_MODES:
        raise ValueError(f"batch_norm {settings.batch_norm!r} is not one of {NORM_MODES}")
    hamming = HammingKernel(images.shape[0], images.device) if "hamming" in needs else None
    feature_needs = needs & set(FEATURE_NEEDS)
    mode = batch_level_mode(settings.batch_norm)
    # NASWOT's codes ride on the Jacobian pass when there is one (as before), else on the feature forward: a
    # train-mode forward has the values of the frozen one (codes can differ only where a unit's input rounds
    # to zero), and it saves the forward of its own that the codes took before.
    jacobian_pass = bool(needs & {"ntk", "input_grads"})
    kernel = grads = None
    method = ""
    if jacobian_pass:
        kernel, grads, method = _probe_jacobians(model, images, needs, settings, hamming, activation_bytes)
    features = None
    if feature_needs or (hamming is not None and not jacobian_pass):
        features = probe_features(model, images, feature_needs, mode, seed, None if jacobian_pass else hamming)
    loss_grads = None
    if "loss_grads" in needs and labels is not None:  # without labels the heuristic reports why
        loss_grads = loss_gradients(model, images, labels, mode)
    return NetworkProbe(
        ntk_kernel=kernel,
        hamming_kernel=hamming.kernel if hamming is not None else None,
        relu_units=hamming.units if hamming is not None else 0,
        input_grads=grads.double().cpu().numpy() if grads is not None else None,
        ntk_method=method,
        features=features,
        loss_grads=loss_grads,
        synflow=synflow_by_layer(model, images.shape[1:]) if "synflow" in needs else None,
    )


def batch_level_mode(batch_norm: str) -> str:
    """BatchNorm mode of the batch-level passes (features, loss gradients) under the probe's `batch_norm`.

    "frozen" exists so that per-sample Jacobians are defined; the batch-level scores need no per-sample
    independence and their references (AZ-NAS, MeCo, SWAP, ZiCo) run BatchNorm in train mode. Train mode
    (running statistics untouched) has the same forward values as "frozen" and differentiates through the
    batch statistics as those references do, at a cheaper forward. "eval" and "train" apply as they are.
    """
    return "train" if batch_norm == "frozen" else batch_norm


def _probe_jacobians(model: nn.Module, images: torch.Tensor, needs: frozenset[str], settings: ProbeSettings,
                     hamming: HammingKernel | None, activation_bytes: int | None
                     ) -> tuple[np.ndarray | None, torch.Tensor | None, str]:
    # The original probe of the Jacobian scores, unchanged: NTK (+ input grads), or input grads.
    if "ntk" in needs:
        return _probe_ntk(model, images, settings, hamming, "input_grads" in needs, activation_bytes)
    with batch_norm_mode(model, settings.batch_norm), _recording(hamming, model):
        return None, input_jacobian(model, images), ""


def _recording(hamming: HammingKernel | None, model: nn.Module) -> AbstractContextManager:
    return hamming.recording(model) if hamming is not None else nullcontext()


def _probe_ntk(model: nn.Module, images: torch.Tensor, settings: ProbeSettings, hamming: HammingKernel | None,
               want_input: bool, activation_bytes: int | None) -> tuple[np.ndarray, torch.Tensor | None, str]:
    method, mode = settings.ntk_method, settings.batch_norm
    if method not in NTK_METHODS:
        raise ValueError(f"ntk_method {method!r} is not one of {NTK_METHODS}")
    if mode == "train" or method == "loop":
        # Coupled BatchNorm (or the explicit oracle): only the per-sample loop gives this NTK. The codes and
        # (frozen) statistics come from one full-batch forward first; the loop may run samples one by one.
        with torch.no_grad(), batch_norm_mode(model, mode) as stats, _recording(hamming, model):
            model(images)
        with batch_norm_mode(model, mode, stats):
            kernel = ntk_gram_loop(model, images)
            grads = input_jacobian(model, images) if want_input else None
        return kernel, grads, "loop"
    n = images.shape[0]
    if method in ("auto", "hooks"):
        if activation_bytes is None:
            activation_bytes = activation_bytes_per_sample(model, images)
        fits = n * ACTIVATION_OVERHEAD * activation_bytes <= settings.memory_budget_mib * 2**20
        if fits or method == "hooks":
            try:
                with batch_norm_mode(model, mode), _recording(hamming, model):
                    kernel, grads, _ = ntk_by_layer_hooks(model, images)
                return kernel.cpu().numpy(), grads, "hooks"
            except UnsupportedModel as reason:
                if method == "hooks":
                    raise
                log.debug("layer-hook NTK not applicable (%s); using torch.func", reason)
            except (RuntimeError, torch.cuda.OutOfMemoryError) as error:
                if not is_out_of_memory(error):
                    raise
                log.warning("out of memory in the one-pass NTK; using chunked torch.func")
            if hamming is not None:  # the failed pass may have recorded part of the codes
                hamming.reset()
        log.debug("batch of %d does not fit %.0f MiB in one pass; chunking", n, settings.memory_budget_mib)
    # torch.func path: record the batch statistics (and codes) on the full batch, then reuse them.
    with torch.no_grad(), batch_norm_mode(model, mode) as stats, _recording(hamming, model):
        model(images)
    with batch_norm_mode(model, mode, stats):
        result = ntk_gram_vmap(model, images, memory_budget_mib=settings.memory_budget_mib,
                               with_input_grads=want_input)
    return result.kernel, result.input_grads, "vmap"


# ---------------------------------------------------------------- the scores
def float32_noise_floor(kernel: np.ndarray) -> float:
    """Eigenvalues of a Gram of float32 gradients below N * eps32 * lambda_max are rounding noise."""
    return kernel.shape[0] * float(np.finfo(np.float32).eps)


@register_heuristic("ntk", needs=("ntk",))
def ntk_condition_number(context: HeuristicContext) -> float:
    """TE-NAS trainability (Chen, Gong & Wang, ICLR 2021, eq. 3): kappa = lambda_max / lambda_min of the NTK.

    K = J J^T with J_i = d(sum_c f_c(x_i)) / d(theta) over all trainable parameters theta at init (their
    `get_ntk_n`: the gradient of each sample's summed logits). Eigenvalues in float64. A K whose smallest
    eigenvalue is at or below the float32 rounding floor (N eps32 lambda_max) is singular: +inf.
    """
    return condition_number(context.probe.ntk_kernel)


def condition_number(kernel: np.ndarray) -> float:
    """lambda_max / lambda_min of a symmetric PSD kernel; ScoreUndefined when (numerically) singular."""
    if not np.all(np.isfinite(kernel)):
        raise ScoreUndefined("NTK has non-finite entries")
    eigenvalues = np.linalg.eigvalsh(kernel.astype(np.float64))
    top, bottom = eigenvalues[-1], eigenvalues[0]
    if top <= 0:
        raise ScoreUndefined("NTK is zero (no parameter affects the output)")
    if bottom <= top * float32_noise_floor(kernel):
        raise ScoreUndefined(f"NTK singular (lambda_min/lambda_max = {bottom / top:.2e})")
    return float(top / bottom)


@register_heuristic("linear_regions", needs=("hamming",))
def hamming_logdet(context: HeuristicContext) -> PendingScore:
    """NASWOT (Mellor et al., ICML 2021, eq. 2): -log|K_H|, K_H,ij = N_A - d_H(c_i, c_j) over ReLU codes.

    c_i is the binary code (pre-activation > 0) of sample i at every unit of every nn.ReLU; K_H counts
    the units on which two samples agree. NASWOT maximises log|K_H|; fne minimises its negative.
    Computed with slogdet in float64 on the probe's device (never a raw det); a non-positive determinant
    is +inf.
    """
    kernel = context.probe.hamming_kernel
    if kernel is None or kernel.numel() == 0 or context.probe.relu_units == 0:
        raise ScoreUndefined("Hamming kernel is empty or non-finite (no ReLU units?)")
    sign, logdet = torch.linalg.slogdet(kernel)
    return PendingScore(-logdet, (
        (~torch.isfinite(kernel).all(), "Hamming kernel is empty or non-finite (no ReLU units?)"),
        ((sign <= 0) | ~torch.isfinite(logdet), "Hamming kernel singular (samples share their activation pattern)")))


def log_abs_det(kernel: np.ndarray | torch.Tensor) -> float:
    """log det of a PSD kernel via slogdet; ScoreUndefined when singular or non-finite."""
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.size == 0 or not np.all(np.isfinite(kernel)):
        raise ScoreUndefined("Hamming kernel is empty or non-finite (no ReLU units?)")
    sign, logdet = np.linalg.slogdet(kernel)
    if sign <= 0 or not np.isfinite(logdet):
        raise ScoreUndefined("Hamming kernel singular (samples share their activation pattern)")
    return float(logdet)


@register_heuristic("grad_corr", needs=("input_grads",))
def jacobian_correlation(context: HeuristicContext) -> float:
    """Mellor et al. v1 (arXiv:2006.04647v1, "jacob_cov"): sum_i log(v_i + k) + 1/(v_i + k), k = 1e-5.

    J_i = d(sum_c f_c(x_i)) / d(x_i) per sample (their `get_batch_jacobian`); v are the eigenvalues of the
    N x N correlation matrix of the J_i. The paper maximises the negative of this sum (uncorrelated
    Jacobians, v = 1, score better); fne minimises the sum itself. A constant J_i (the output does not
    depend on the input) leaves the correlation undefined: +inf.
    """
    return jacobian_correlation_score(context.probe.input_grads)


def jacobian_correlation_score(jacobians: np.ndarray, epsilon: float = GRAD_CORR_EPSILON) -> float:
    """sum log(v + k) + 1/(v + k) over the eigenvalues v of corrcoef(jacobians) (rows are samples)."""
    jacobians = np.asarray(jacobians, dtype=np.float64)
    if not np.all(np.isfinite(jacobians)):
        raise ScoreUndefined("input Jacobian has non-finite entries")
    spread = jacobians.std(axis=1)
    if np.any(spread <= 1e-12 * max(float(np.abs(jacobians).max()), 1e-300)):
        raise ScoreUndefined("input Jacobian is constant for some sample (output independent of the input?)")
    eigenvalues = np.linalg.eigvalsh(np.corrcoef(jacobians))
    return float(np.sum(np.log(eigenvalues + epsilon) + 1.0 / (eigenvalues + epsilon)))
