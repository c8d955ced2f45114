"""Fitness of genotypes: the training-free heuristics of a list of genotypes as one tidy DataFrame.

    df = score_genotypes(get_space("nb201"), ["C+CC+kCC", ...], images, FitnessConfig(seed=0))

One row per genotype, in input order: genotype, one column per heuristic (all minimised; +inf when
undefined), params, flops, seconds, device, error ("" if none). Each candidate's network is initialised
from `candidate_seed(run seed, canonical genotype)`, a stable hash, never from the evaluation order, so
scores do not depend on order, batching or which worker evaluates them. The heuristics themselves
(registry, definitions, sources) are in heuristics.py and one file per score family (az_nas.py, meco.py,
swap.py, zico.py, synflow.py, complexity.py); the batched Jacobian machinery in jacobians.py. Pass the
batch's `labels` for the loss-based scores (zico); aggregation.py combines scores across candidates.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from fne.device import resolve_device
from fne.errors import ConfigError
from fne.genotopheno.network import count_flops, count_parameters
from fne.genotopheno.spaces import SearchSpace
from fne.scoring import az_nas, cell_topology, complexity, meco, swap, synflow, zico  # noqa: F401 - registers them
from fne.scoring.aggregation import AZ_NAS_SCORES
from fne.scoring.heuristics import (
    HEURISTICS,
    LABEL_NEEDS,
    NTK_METHODS,
    HeuristicContext,
    PendingScore,
    ProbeSettings,
    ScoreUndefined,
    probe_network,
    register_heuristic,
)
from fne.scoring.jacobians import NORM_MODES
from fne.scoring.networks import BuildAhead

__all__ = ["DEFAULT_HEURISTICS", "HEURISTICS", "ORIGINAL_HEURISTICS", "RECOMMENDED_HEURISTICS", "FitnessConfig",
           "candidate_seed", "needs_labels", "register_heuristic", "score_genotypes", "score_network",
           "space_heuristics"]

log = logging.getLogger(__name__)

# The original method's three scores (TE-NAS's NTK condition number, NASWOT, jacob_cov): still computed,
# reported and selectable with heuristics=ORIGINAL_HEURISTICS.
ORIGINAL_HEURISTICS = ("ntk", "linear_regions", "grad_corr")
# The default set, one score per family that carried independent signal on 1,000 NB201 nets
# (experiments/choose_aggregate.py, report/heuristics/aggregation.md): AZ-NAS's four (expressivity,
# progressivity, trainability, complexity), MeCo (feature correlation), SWAP (activation patterns) and ZiCo
# (gradient signal-to-noise), aggregated by AZ-NAS's sum of log ranks (aggregation.az_nas_log_rank).
DEFAULT_HEURISTICS = (*AZ_NAS_SCORES, "meco", "swap", "zico")
# AZ-NAS's four plus MeCo and synflow: no labels needed, about one forward+backward together
# (benchmarks/bench_heuristics.py), and their AZ-NAS log-rank aggregate (aggregation.az_nas_log_rank)
# ranked 100 sampled NB201 nets at Spearman 0.93 where the three defaults' rank sum reaches 0.78 on 1,000.
RECOMMENDED_HEURISTICS = (*AZ_NAS_SCORES, "meco", "synflow")
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class FitnessConfig:
    """How candidates are scored. Defaults are justified by measurements in report/heuristics/README.md."""

    batch_size: int = 64  # N real images per probe (TE-NAS uses 64; NASWOT 128)
    repeats: int = 1  # independent inits per genotype, scores averaged (TE-NAS uses 3)
    seed: int = 0  # run seed: with the canonical genotype it fixes every init
    device: str = "auto"
    heuristics: tuple[str, ...] = DEFAULT_HEURISTICS
    memory_budget_mib: float = 2048.0  # peak activation + Jacobian memory of one probe
    batch_norm: str = "frozen"  # see jacobians.NORM_MODES (batch-level scores: heuristics.batch_level_mode)
    ntk_method: str = "auto"  # "auto" (one-pass hooks, else torch.func), "hooks", "vmap" or "loop"
    dtype: str = "float32"
    C: int | None = None  # network width / depth overrides (None: the space's defaults)
    layers: int | None = None
    num_classes: int = 10  # the networks' outputs: the dataset's classes

    def __post_init__(self) -> None:
        object.__setattr__(self, "heuristics", tuple(self.heuristics))
        if self.batch_size < 2:
            raise ConfigError(f"batch_size={self.batch_size}: the kernels need at least 2 images")
        if self.repeats < 1:
            raise ConfigError(f"repeats={self.repeats} must be at least 1")
        if self.memory_budget_mib <= 0:
            raise ConfigError(f"memory_budget_mib={self.memory_budget_mib} must be positive")
        if self.batch_norm not in NORM_MODES:
            raise ConfigError(f"batch_norm={self.batch_norm!r} is not one of {', '.join(NORM_MODES)}")
        if self.ntk_method not in NTK_METHODS:
            raise ConfigError(f"ntk_method={self.ntk_method!r} is not one of {', '.join(NTK_METHODS)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype={self.dtype!r} is not one of {', '.join(DTYPES)}")
        if not self.heuristics:
            raise ConfigError("heuristics is empty: name at least one")

    def probe_settings(self) -> ProbeSettings:
        """The subset of the config that the network probe uses."""
        return ProbeSettings(self.batch_norm, self.ntk_method, self.memory_budget_mib)


def space_heuristics(space: SearchSpace) -> tuple[str, ...]:
    """The scores a space ranks by default: its own (`search_defaults["heuristics"]`, e.g. DARTS's) or fne's."""
    return tuple(space.search_defaults.get("heuristics", DEFAULT_HEURISTICS))


def candidate_seed(run_seed: int, genotype: str, repeat: int = 0) -> int:
    """Init seed of one candidate: a stable SHA-256 hash of (run seed, canonical genotype, repeat), < 2**63."""
    text = f"{int(run_seed)}\x1f{genotype}" + (f"\x1f{int(repeat)}" if repeat else "")
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little") & (2**63 - 1)


def _check_heuristics(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in HEURISTICS]
    if unknown:
        raise ConfigError(f"unknown heuristic(s) {', '.join(unknown)}; registered: {', '.join(HEURISTICS)}")


def needs_labels(names: Sequence[str]) -> bool:
    """Whether any of the named heuristics needs the labels of the batch (e.g. ZiCo's loss)."""
    return any(HEURISTICS[name].needs & LABEL_NEEDS for name in names if name in HEURISTICS)


def score_network(model: torch.nn.Module, images: torch.Tensor, config: FitnessConfig,
                  activation_bytes: int | None = None, *, labels: torch.Tensor | None = None, seed: int = 0,
                  params: int | None = None, flops: int | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """(scores, errors) of one built network: +inf and a reason for every score that is undefined.

    `labels` (one class per image) serve the loss-based scores, `seed` the probe's random signals;
    `params` and `flops`, when already counted, save the complexity scores a count.
    """
    scores, errors, _ = _score_model(model, images, config, activation_bytes, labels=labels, seed=seed,
                                     params=params, flops=flops)
    return scores, errors


def _score_model(model: torch.nn.Module, images: torch.Tensor, config: FitnessConfig,
                 activation_bytes: int | None = None, *, labels: torch.Tensor | None = None, seed: int = 0,
                 params: int | None = None, flops: int | None = None
                 ) -> tuple[dict[str, float], dict[str, str], int | None]:
    # score_network, plus the FLOPs of one image when the probe's forward counted them (else None).
    _check_heuristics(config.heuristics)
    wanted = [HEURISTICS[name] for name in config.heuristics]
    needs = frozenset().union(*(h.needs for h in wanted))
    scores = {h.name: math.inf for h in wanted}
    errors: dict[str, str] = {}
    settings = config.probe_settings()
    try:
        probe = probe_network(model, images, needs, settings, activation_bytes, labels=labels, seed=seed)
    except Exception as error:  # noqa: BLE001 - a broken candidate must not stop a search
        reason = f"probe failed: {type(error).__name__}: {error}".splitlines()[0]
        log.debug("probe failed", exc_info=True)
        return scores, {h.name: reason for h in wanted}, None
    if flops is None and probe.features is not None:
        flops = probe.features.flops
    context = HeuristicContext(model, images, settings, probe, labels, params, flops)
    pending: dict[str, PendingScore] = {}
    for heuristic in wanted:
        try:
            value = heuristic.fn(context)
            if isinstance(value, torch.Tensor):
                value = PendingScore(value)
            if isinstance(value, PendingScore):
                pending[heuristic.name] = value
                continue
            scores[heuristic.name] = _finite(float(value))
        except ScoreUndefined as reason:
            errors[heuristic.name] = str(reason)
        except Exception as error:  # noqa: BLE001 - a user heuristic may fail on one network
            errors[heuristic.name] = f"{type(error).__name__}: {error}".splitlines()[0]
            log.debug("heuristic %s failed", heuristic.name, exc_info=True)
    for name, outcome in resolve_pending(pending).items():
        if isinstance(outcome, str):
            errors[name] = outcome
        else:
            scores[name] = outcome
    errors = {h.name: errors[h.name] for h in wanted if h.name in errors}  # in the heuristics' order
    return scores, errors, flops


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ScoreUndefined(f"returned {value}")
    return value


def resolve_pending(pending: dict[str, PendingScore]) -> dict[str, float | str]:
    """Bring every pending score and condition to the host in one transfer: each its value, or why it is undefined."""
    if not pending:
        return {}
    values = [p.value.reshape(()).to(torch.float64) for p in pending.values()]
    conditions = [condition.reshape(()).to(torch.float64) for p in pending.values() for condition, _ in p.undefined]
    numbers = torch.stack(values + conditions).tolist()
    outcomes: dict[str, float | str] = {}
    position = len(values)
    for (name, score), value in zip(pending.items(), numbers[:len(values)], strict=True):
        flags = numbers[position:position + len(score.undefined)]
        position += len(score.undefined)
        reason = next((text for flag, (_, text) in zip(flags, score.undefined, strict=True) if flag), None)
        outcomes[name] = reason if reason is not None else (value if math.isfinite(value) else f"returned {value}")
    return outcomes


def score_genotypes(space: SearchSpace, genotypes: Sequence[str], images: torch.Tensor, config: FitnessConfig,
                    progress: bool = False, labels: torch.Tensor | None = None,
                    build_ahead: bool | None = None) -> pd.DataFrame:
    """Score genotypes (in input order) on the first config.batch_size images; one DataFrame row each.

    `labels` (the class of each image) are needed by the loss-based scores (zico); without them those are
    +inf with the reason. `build_ahead` builds the next network in a thread while one is probed (None: on CUDA).
    """
    _check_heuristics(config.heuristics)
    if images.dim() != 4 or images.shape[0] < config.batch_size:
        raise ConfigError(f"images of shape {tuple(images.shape)}: expected (N, C, H, W) with N >= batch_size="
                          f"{config.batch_size}")
    if labels is not None and (labels.dim() != 1 or labels.shape[0] < config.batch_size):
        raise ConfigError(f"labels of shape {tuple(labels.shape)}: expected (N,) with N >= batch_size="
                          f"{config.batch_size}")
    device = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    batch = images[:config.batch_size].to(device=device, dtype=dtype)
    if labels is not None:
        labels = labels[:config.batch_size].to(device=device, dtype=torch.long)
    canonical = [space.canonical(g) for g in genotypes]  # GenotypeError up front, before any work
    rows = []
    # On a GPU the next network is built while the current one is probed (networks.py).
    builds = BuildAhead(space, config.C, config.layers, config.num_classes, device, dtype,
                        ahead=(device.type == "cuda" if build_ahead is None else build_ahead) and len(canonical) > 1)
    try:
        for index, (genotype, key) in enumerate(tqdm(list(zip(genotypes, canonical, strict=True)), desc="scoring",
                                                     unit="arch", disable=not progress, leave=False)):
            if index + 1 < len(canonical):
                builds.prepare(canonical[index + 1], candidate_seed(config.seed, canonical[index + 1]))
            rows.append(_score_one(genotype, key, batch, labels, config, builds))
    finally:
        builds.close()
    columns = ["genotype", *config.heuristics, "params", "flops", "seconds", "device", "error"]
    return pd.DataFrame(rows, columns=columns)


def _score_one(genotype: str, canonical: str, batch: torch.Tensor, labels: torch.Tensor | None,
               config: FitnessConfig, builds: BuildAhead) -> dict[str, object]:
    start = time.perf_counter()
    per_repeat: dict[str, list[float]] = {name: [] for name in config.heuristics}
    errors: dict[str, str] = {}
    params = flops = -1
    for repeat in range(config.repeats):
        seed = candidate_seed(config.seed, canonical, repeat)
        try:
            model = builds.network(canonical, seed)
        except ConfigError:
            raise  # C/layers wrong for this space: every candidate would fail the same way
        except Exception as error:  # noqa: BLE001 - recorded, the search goes on
            errors = {name: f"build failed: {type(error).__name__}: {error}" for name in config.heuristics}
            break
        if repeat == 0:
            params = count_parameters(model)
        scores, failed, counted = _score_model(model, batch, config, labels=labels, seed=seed, params=params,
                                               flops=flops if flops >= 0 else None)
        if repeat == 0:
            flops = counted if counted is not None else _count_flops(model, batch)
        for name, value in scores.items():
            per_repeat[name].append(value)
        for name, reason in failed.items():
            errors.setdefault(name, reason if config.repeats == 1 else f"repeat {repeat}: {reason}")
    row: dict[str, object] = {"genotype": genotype}
    for name in config.heuristics:
        values = per_repeat[name]
        # Any undefined repeat makes the mean undefined: +inf, the worst, as for a single init.
        row[name] = float(np.mean(values)) if values and all(map(math.isfinite, values)) else math.inf
    row.update(params=params, flops=flops, seconds=time.perf_counter() - start, device=str(builds.device),
               error="; ".join(f"{name}: {reason}" for name, reason in errors.items()))
    return row


def _count_flops(model: torch.nn.Module, batch: torch.Tensor) -> int:
    # The FLOP count's own forward, when the probe's forward did not count them (FlopCounterMode).
    try:
        return count_flops(model, (1, *batch.shape[1:]))
    except Exception:  # noqa: BLE001 - FLOPs are informative only
        log.debug("FLOP count failed", exc_info=True)
        return -1
