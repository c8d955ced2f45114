"""Validation of the heuristics against ground truth (NAS-Bench-201): sampling, a resumable score cache,
rank correlations and seaborn figures. The `plot_scores` command is a thin layer over `validate`.

Sign convention of the correlation table: every score is oriented so that HIGHER predicts BETTER
accuracy (the minimised heuristics and the rank-combined score are negated; #params and FLOPs are used
as they are, the usual "bigger is better" baselines), so a good predictor has positive tau and rho.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from tqdm.auto import tqdm

from fne.data.ground_truth import read_ground_truth
from fne.device import resolve_device
from fne.errors import DataError
from fne.genotopheno.spaces import SearchSpace
from fne.scoring.aggregation import AGGREGATES, AZ_NAS_SCORES, az_nas_log_rank, linear_rank_sum
from fne.scoring.fitness import FitnessConfig, score_genotypes
from fne.study.bootstrap import bootstrap_interval, resample_indices

log = logging.getLogger(__name__)

CACHE_FORMAT = 2  # 2: keys without the heuristics; a genotype's lines add up to one row
BASELINES = ("params", "flops")  # higher = "predicts better"


def load_ground_truth(path: str | Path, arch_column: str, accuracy_column: str, space: SearchSpace, *,
                      C: int | None = None, layers: int | None = None, keep_prefixes: Sequence[str] = ()
                      ) -> pd.DataFrame:
    """The architecture/accuracy table (fne.data.ground_truth.read_ground_truth), rows renumbered from 0.

    Each row's text is read by the space's `table_genotype` at the table's network size (C, layers); the
    canonical genotype is the `canonical` column, the text stays as given in `arch_column`; columns named with
    one of `keep_prefixes` (other methods' scores) come along after it.
    """
    table = read_ground_truth(path, space, arch_column, accuracy_column, keep_prefixes=keep_prefixes,
                              canonical=lambda text: space.table_genotype(text, C=C, layers=layers))
    given = [name for name in table.columns if name not in (arch_column, accuracy_column)]
    return table.reset_index()[[arch_column, accuracy_column, "canonical", *given]]


def given_columns(table: pd.DataFrame, arch_column: str, accuracy_column: str) -> list[str]:
    """The columns of a `load_ground_truth` table that hold other methods' scores."""
    return [name for name in table.columns if name not in (arch_column, accuracy_column, "canonical")]


def sample_rows(table: pd.DataFrame, sample: int | None, seed: int) -> pd.DataFrame:
    """A seeded uniform subset of `sample` rows (all rows when sample is None or >= the table size).

    The first rows of one seeded permutation, in that order: a smaller sample is a prefix of a larger one
    with the same seed, so a tuning run on 200 architectures is reused (via the cache) by the 1,000 run.
    """
    if sample is None or sample >= len(table):
        return table
    if sample < 1:
        raise DataError(f"--sample {sample}: expected a positive number of architectures")
    chosen = np.random.default_rng(seed).permutation(len(table))[:sample]
    return table.iloc[chosen].reset_index(drop=True)


def settings_key(config: FitnessConfig, images: torch.Tensor, space_name: str,
                 labels: torch.Tensor | None = None) -> str:
    """Hash of everything a score depends on but the heuristics asked for: config (not device, budget, method
    or heuristics), space, image bytes and, when given, label bytes.

    The heuristics are left out so that one cache serves every set of them: each row holds the scores
    computed so far, and a study asking for more scores only computes the missing ones (each score's
    value does not depend on which others are computed with it: tests/scoring/test_registered.py).
    """
    fields = asdict(config)
    for irrelevant in ("device", "memory_budget_mib", "ntk_method", "heuristics"):
        fields.pop(irrelevant)
    if fields.get("num_classes") == 10:  # caches written before num_classes existed were all of 10 classes
        fields.pop("num_classes")
    digest = hashlib.sha256(images[:config.batch_size].detach().cpu().numpy().tobytes()).hexdigest()[:16]
    if labels is not None:
        label_bytes = labels[:config.batch_size].detach().cpu().to(torch.int64).numpy().tobytes()
        fields["labels"] = hashlib.sha256(label_bytes).hexdigest()[:16]
    text = json.dumps({"space": space_name, "images": digest, **fields}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ScoreCache:
    """Append-only JSON-lines file of scored rows keyed by (settings key, canonical genotype).

    One line per architecture, flushed and fsync'd as it is written, so an interrupted run loses at most
    the architecture in flight. Lines that are not a cache record (torn by an interruption, or damaged
    bytes) are skipped with one warning: the architectures they held are scored again.
    """

    def __init__(self, path: str | Path, key: str):
        self.path = Path(path)
        self.key = key
        self.rows: dict[str, dict] = {}
        self._ends_mid_line = False
        if self.path.is_dir():
            raise DataError(f"score cache {self.path} is a folder; expected a JSON-lines file (or none yet)")
        if self.path.exists():
            data = self.path.read_bytes()
            self._ends_mid_line = bool(data) and not data.endswith(b"\n")
            skipped = [number for number, line in enumerate(data.splitlines(), 1)
                       if line.strip() and not self._read_line(line)]
            if skipped:
                log.warning("score cache %s: skipped %d damaged or torn line(s) (first: line %d); those "
                            "architectures are scored again", self.path, len(skipped), skipped[0])

    def _read_line(self, line: bytes) -> bool:
        """Take one line's record if it is this cache's; False if the line is not a cache record at all."""
        try:
            record = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return False
        if not (isinstance(record, dict) and isinstance(record.get("genotype"), str)
                and isinstance(record.get("row"), dict)):
            return False
        if record.get("key") == self.key and record.get("format") == CACHE_FORMAT:
            self.rows.setdefault(record["genotype"], {}).update(record["row"])  # later lines add scores
        return True

    def __contains__(self, genotype: str) -> bool:
        return genotype in self.rows

    def missing(self, genotype: str, names: Sequence[str]) -> list[str]:
        """The scores among `names` that this cache does not hold for the genotype."""
        row = self.rows.get(genotype, {})
        return [name for name in names if name not in row]

    def add(self, genotype: str, row: dict) -> None:
        """Append one scored row and flush it to disk."""
        old = self.rows.get(genotype, {})
        row = {**old, **row}
        if old:  # a row completed with more scores: keep both evaluations' errors and time
            row["error"] = "; ".join(filter(None, (str(old.get("error") or ""), str(row.get("error") or ""))))
            row["seconds"] = float(old.get("seconds", 0.0)) + float(row.get("seconds", 0.0))
        self.rows[genotype] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # allow_nan: +inf scores are written as Infinity, which json.loads reads back.
        line = json.dumps({"format": CACHE_FORMAT, "key": self.key, "genotype": genotype, "row": row})
        with self.path.open("a", encoding="utf-8") as handle:
            # After a torn last line, a record appended to it would be torn too: start a new line.
            handle.write(("\n" if self._ends_mid_line else "") + line + "\n")
            self._ends_mid_line = False
            handle.flush()
            os.fsync(handle.fileno())


def score_with_cache(space: SearchSpace, genotypes: Sequence[str], images: torch.Tensor, config: FitnessConfig,
                     cache: ScoreCache | None, progress: bool = True, labels: torch.Tensor | None = None
                     ) -> pd.DataFrame:
    """score_genotypes, one architecture at a time (8 on a GPU), computing only the scores the cache lacks (and
    adding them)."""
    canonical = [space.canonical(g) for g in genotypes]
    names = list(config.heuristics)
    todo = {c: (names if cache is None else cache.missing(c, names)) for c in dict.fromkeys(canonical)}
    todo = {c: missing for c, missing in todo.items() if missing}
    log.info("%d architectures, %d fully cached, %d to score", len(set(canonical)), len(set(canonical)) - len(todo),
             len(todo))
    fresh: dict[str, dict] = {}
    device = resolve_device(config.device)
    images = images[:config.batch_size].to(device)  # once, not once per architecture
    labels = None if labels is None else labels[:config.batch_size].to(device)
    # On a GPU, runs of architectures missing the same scores go 8 at a time, so that score_genotypes builds
    # the next network while one is probed; each row still reaches the cache as soon as its run is scored.
    size = 8 if device.type == "cuda" else 1
    chunks = [list(group) for _, group in itertools.groupby(todo.items(), key=lambda item: tuple(item[1]))]
    chunks = [chunk[start:start + size] for chunk in chunks for start in range(0, len(chunk), size)]
    with tqdm(total=len(todo), desc="scoring", unit="arch", disable=not progress) as bar:
        for chunk in chunks:
            partial = replace(config, heuristics=tuple(chunk[0][1]))
            table = score_genotypes(space, [genotype for genotype, _ in chunk], images, partial, labels=labels)
            for (genotype, _), row in zip(chunk, table.to_dict("records"), strict=True):
                row = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
                if cache is not None:
                    cache.add(genotype, row)
                    row = cache.rows[genotype]
                fresh[genotype] = row
            bar.update(len(chunk))
    rows = [(fresh.get(c) or cache.rows[c]) for c in canonical]
    return pd.DataFrame(rows).assign(genotype=canonical)


def rank_combined(scores: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    """TE-NAS's combination (aggregation.linear_rank_sum, the search's too) as a Series aligned with `scores`."""
    return pd.Series(linear_rank_sum(scores, columns), index=scores.index)


def oriented(values: pd.Series, name: str, as_given: Sequence[str] = ()) -> pd.Series:
    """The score oriented so that higher predicts better accuracy (baselines and `as_given` columns as they are,
    the minimised heuristics and aggregates negated)."""
    return values.astype(float) if name in BASELINES or name in as_given else -values.astype(float)


@dataclass(frozen=True)
class Correlation:
    """Rank correlation of one score with accuracy (higher-is-better orientation)."""

    score: str
    kendall_tau: float
    spearman_rho: float
    n: int
    n_infinite: int
    kendall_low: float = np.nan  # 95% percentile bootstrap interval (NaN without resamples)
    kendall_high: float = np.nan
    spearman_low: float = np.nan
    spearman_high: float = np.nan


def correlate(scores: pd.DataFrame, accuracy_column: str, names: Sequence[str], *, as_given: Sequence[str] = (),
              resamples: int = 0, seed: int = 0) -> pd.DataFrame:
    """Kendall tau and Spearman rho of each named column against accuracy (+inf scores rank worst; rows where
    a column is NaN, such as a method that has no score for them, are left out of that column's figures), with
    95% bootstrap intervals over `resamples` seeded resamples of the architectures (none when 0)."""
    rows = []
    accuracy = scores[accuracy_column].astype(float)
    indices = resample_indices(len(scores), resamples, seed) if resamples else None
    for name in names:
        values = oriented(scores[name], name, as_given)
        known = values.notna()
        tau = stats.kendalltau(values[known], accuracy[known]).statistic
        rho = stats.spearmanr(values[known], accuracy[known]).statistic
        interval = (bootstrap_interval(values.to_numpy(), accuracy.to_numpy(), indices) if indices is not None
                    else (np.nan,) * 4)
        rows.append(Correlation(name, float(tau), float(rho), int(known.sum()),
                                int(np.isinf(scores[name].astype(float)).sum()), *interval))
    return pd.DataFrame([asdict(r) for r in rows])


@dataclass(frozen=True)
class ValidationResult:
    """What `validate` produced: the per-architecture scores, the correlation table and the files."""

    scores: pd.DataFrame
    correlations: pd.DataFrame
    files: tuple[Path, ...]


def validate(space: SearchSpace, table: pd.DataFrame, arch_column: str, accuracy_column: str,
             images: torch.Tensor, config: FitnessConfig, out: str | Path, cache_path: str | Path | None = None,
             progress: bool = True, figures: bool = True, labels: torch.Tensor | None = None,
             aggregate: str = "az_nas", given: Sequence[str] = (), resamples: int = 0) -> ValidationResult:
    """Score every architecture of `table`, correlate with accuracy, write scores.csv, correlations.csv, PNGs.

    rank_combined is the `aggregate` (aggregation.AGGREGATES) of all the heuristics, as the search ranks them;
    the other aggregate is reported too (rank_linear or rank_az_nas), and with AZ-NAS's four scores among the
    heuristics, their own log-rank aggregate as `az_nas` (AZ-NAS's published predictor). `given` columns of
    the table (another method's scores, higher = better) are correlated beside them; `resamples` > 0 adds
    95% bootstrap intervals (seeded with config.seed).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = settings_key(config, images, space.name, labels)
    cache = ScoreCache(cache_path if cache_path is not None else out / "score_cache.jsonl", key)
    genotypes = table["canonical"] if "canonical" in table else table[arch_column]
    scored = score_with_cache(space, [str(a) for a in genotypes], images, config, cache, progress, labels)
    result, names = _study_table(table, scored, arch_column, accuracy_column, list(config.heuristics), aggregate,
                                 list(given))
    correlations = correlate(result.assign(**_pairs(result, list(config.heuristics))), accuracy_column,
                             names + list(_pairs(result, list(config.heuristics))), as_given=given,
                             resamples=resamples, seed=config.seed)
    files = [out / "scores.csv", out / "correlations.csv"]
    result.to_csv(files[0], index=False)
    correlations.to_csv(files[1], index=False, float_format="%.4f")
    if figures:
        # Imported only to draw: seaborn/matplotlib take seconds to import and a scoring-only study never draws.
        from fne.figures.score_study import write_figures

        files += write_figures(result, correlations, accuracy_column, names, out)
    log.info("wrote %s", ", ".join(map(str, files)))
    return ValidationResult(result, correlations, tuple(files))


def _study_table(table: pd.DataFrame, scored: pd.DataFrame, arch_column: str, accuracy_column: str,
                 heuristics: list[str], aggregate: str, given: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """scores.csv's table (the row's text as given, accuracy, every score, the aggregates, the given columns, the
    canonical genotype, time and errors) and the names of the columns to correlate."""
    result = table[[arch_column, accuracy_column]].reset_index(drop=True).copy()
    for column in [*heuristics, *BASELINES]:
        result[column] = scored[column].to_numpy()
    result["rank_combined"] = AGGREGATES[aggregate](result, heuristics)
    names = [*heuristics, *BASELINES, "rank_combined"]
    for other in (name for name in AGGREGATES if name != aggregate):
        result[f"rank_{other}"] = AGGREGATES[other](result, heuristics)
        names.append(f"rank_{other}")
    if set(AZ_NAS_SCORES) <= set(heuristics):
        result["az_nas"] = az_nas_log_rank(result, AZ_NAS_SCORES)
        names.append("az_nas")
    for column in given:
        result[column] = table[column].to_numpy(dtype=float)
    if "canonical" in table:
        result["canonical"] = table["canonical"].to_numpy()
    result["seconds"] = scored["seconds"].to_numpy()
    result["error"] = scored["error"].fillna("").to_numpy()
    return result, names + given


def _pairs(result: pd.DataFrame, heuristics: list[str]) -> dict[str, pd.Series]:
    """With 3 or 4 heuristics, the linear rank sum of every pair too (TE-NAS combines ntk + linear_regions)."""
    if not 2 < len(heuristics) <= 4:
        return {}
    return {f"rank_{a}+{b}": rank_combined(result, [a, b])
            for i, a in enumerate(heuristics) for b in heuristics[i + 1:]}


def summarise_errors(scores: pd.DataFrame) -> dict[str, int]:
    """How many architectures each distinct error reason hit (for the log and the report)."""
    counts: dict[str, int] = {}
    for text in scores.get("error", pd.Series(dtype=str)).fillna(""):
        for part in filter(None, (p.strip() for p in str(text).split(";"))):
            reason = part.split("(")[0].strip()
            counts[reason] = counts.get(reason, 0) + 1
    return counts
