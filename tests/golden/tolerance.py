"""How closely a golden table must come back on another x86 CPU or at another thread count, and why.

float32 kernels (BLAS blocking, vector width, the split of a reduction over threads) differ between CPUs
and thread counts at about 1e-7 relative per operation; a thread count changes the reduction order as
another CPU does, so the suite runs every golden case at two thread counts (test_golden.py) and a bound
that holds on one machine only fails there first. Two classes of recorded floats amplify that noise
differently; each class bounds |new - old| <= atol + rtol * |old|. Measured against the records at 1, 2, 3
and 4 threads (torch 2.13 CPU, x86; docs/search.md, "Same pick on any machine", has the table):

- UNTRAINED: scores of untrained networks and what is computed from them (crowding, aggregates). Most
  come back within 2e-6 relative (grad_corr 2e-6, linear_regions 9e-8): rtol 3e-5. Two are
  ill-conditioned and get their own rtol 1e-3: the NTK condition number divides two eigenvalues (1.5e-4
  at 2 threads on the DARTS case), and a crowding distance sums differences of nearly equal scores (2.1e-4).
- TRAINED: quantities after training steps (tournament alphas and weights, training and validation losses,
  the finalists' TSE). Every step compounds the noise: after the golden cases' three steps the losses
  moved 1.3e-4 and the alphas 1.3e-3 absolute (2% of the alpha) at 2 threads. Alphas are centred on 0, so
  the bound is absolute where they are small: atol 5e-3, rtol 1e-3.

Decisions (ids, genotypes, parents, fronts, winners, selections) carry no tolerance at all, and the golden
cases hold no near-tie that noise within these bounds could flip (test_golden.py's near-tie guards).
Which rows are undefined, and why, is a decision too; but a reason's text may quote the float that made it
(`NTK singular (lambda_min/lambda_max = -5.78e-17)`: a zero eigenvalue's rounding, -6.98e-17 with another
LAPACK build), so REASON_COLUMNS compare with their decimal numbers masked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Tolerance:
    """|new - old| <= atol + rtol * |old| for a class of recorded floats; `wider` gives named columns their rtol."""

    rtol: float
    atol: float
    wider: Mapping[str, float] = field(default_factory=dict)

    def bound(self, column: str, old) -> np.ndarray:
        """The largest difference allowed from the recorded value(s) `old` of `column`."""
        return self.atol + self.wider.get(column, self.rtol) * np.abs(np.asarray(old, dtype=float))


UNTRAINED = Tolerance(rtol=3e-5, atol=1e-9, wider={"ntk": 1e-3, "crowding": 1e-3})
TRAINED = Tolerance(rtol=1e-3, atol=5e-3)
TRAINED_COLUMNS = frozenset({"alphas", "weights", "train_loss", "val_loss", "tse", "final_loss", "finalist_tse"})
REASON_COLUMNS = frozenset({"error"})  # why a row is undefined: text that may quote a float
_DECIMAL = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][-+]?\d+)?")


def reason_text(value) -> str:
    """A reason's text with its decimal numbers masked (integers, such as counts, stay)."""
    return _DECIMAL.sub("<x>", str(value))


def tolerance_of(column: str) -> Tolerance:
    """The tolerance class of a recorded column: TRAINED for quantities after training steps, else UNTRAINED."""
    return TRAINED if column in TRAINED_COLUMNS else UNTRAINED


def _as_numbers(value):
    """A cell that holds a JSON list of floats (tournament alphas/weights) as an array, else None."""
    if isinstance(value, str) and value.startswith("["):
        try:
            return np.asarray(json.loads(value), dtype=float)
        except (ValueError, TypeError):
            return None
    return None


def assert_close(new, old, column: str, where: str) -> None:
    """new equals old within the bound of `column`'s class (NaN and inf must match exactly)."""
    new, old = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    assert new.shape == old.shape, f"{where}: {column} has shape {new.shape}, recorded {old.shape}"
    same_special = np.array_equal(np.isnan(new), np.isnan(old)) and np.array_equal(
        new[~np.isfinite(new) & ~np.isnan(new)], old[~np.isfinite(old) & ~np.isnan(old)])
    finite = np.isfinite(old) & np.isfinite(new)
    assert same_special and np.array_equal(finite, np.isfinite(old)), f"{where}: {column} non-finite values differ"
    excess = np.abs(new[finite] - old[finite]) - tolerance_of(column).bound(column, old[finite])
    kind = "trained" if column in TRAINED_COLUMNS else "untrained"
    assert not (excess > 0).any(), \
        f"{where}: {column} differs beyond its {kind} tolerance: {new[finite].tolist()} vs {old[finite].tolist()}"


def assert_same_table(new: pd.DataFrame, old: pd.DataFrame, name: str) -> None:
    """Decisions equal exactly; float columns (and JSON float lists) equal within their class's tolerance."""
    assert list(new.index) == list(old.index), f"{name}: rows differ"
    for column in old.columns:
        a, b = new[column], old[column]
        if pd.api.types.is_float_dtype(b) and not pd.api.types.is_integer_dtype(b):
            assert_close(a.to_numpy(float), b.to_numpy(float), column, name)
            continue
        lists = [_as_numbers(v) for v in b]
        if any(x is not None for x in lists):
            for row, (got, want) in enumerate(zip((_as_numbers(v) for v in a), lists)):
                assert got is not None and want is not None, f"{name}: {column} row {row}"
                assert_close(got, want, column, f"{name} row {row}")
            continue
        if column in REASON_COLUMNS:
            a, b = a.map(reason_text), b.map(reason_text)
        assert a.astype(str).tolist() == b.astype(str).tolist(), f"{name}: decision column {column} differs"


def smallest_gap_over_bound(values, column: str) -> float:
    """The smallest gap between two distinct values over the larger's tolerance bound (inf: fewer than two)."""
    distinct = np.unique(np.asarray([v for v in values if np.isfinite(v)], dtype=float))
    if distinct.size < 2:
        return float("inf")
    bounds = np.maximum(*(tolerance_of(column).bound(column, side) for side in (distinct[1:], distinct[:-1])))
    return float((np.diff(distinct) / bounds).min())
