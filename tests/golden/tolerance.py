"""How closely a golden table must come back on another x86 CPU, and why.

float32 kernels (BLAS blocking, vector width) differ between CPUs at about 1e-6 relative per operation.
The recorded scores amplify that: the NTK condition number divides two eigenvalues (seen: 3e-6 relative
across two CPUs), a crowding distance sums differences of nearly equal scores (3e-7), a few training
steps of a tournament compound it. SCORE_RTOL bounds all of these with a 10x margin; decisions
(ids, genotypes, parents, fronts, winners, selections) carry no tolerance at all, and the golden cases
hold no near-tie a noise within SCORE_RTOL could flip (test_golden_cases_hold_no_near_ties).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

SCORE_RTOL = 3e-5
SCORE_ATOL = 1e-9  # only for values that are 0 up to noise (a zero-width crowding gap, a centred alpha)


def _as_numbers(value):
    """A cell that holds a JSON list of floats (tournament alphas/weights) as an array, else None."""
    if isinstance(value, str) and value.startswith("["):
        try:
            return np.asarray(json.loads(value), dtype=float)
        except (ValueError, TypeError):
            return None
    return None


def assert_same_table(new: pd.DataFrame, old: pd.DataFrame, name: str) -> None:
    """Decisions equal exactly; float columns (and JSON float lists) equal within SCORE_RTOL."""
    assert list(new.index) == list(old.index), f"{name}: rows differ"
    for column in old.columns:
        a, b = new[column], old[column]
        if pd.api.types.is_float_dtype(b) and not pd.api.types.is_integer_dtype(b):
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=SCORE_RTOL, atol=SCORE_ATOL,
                                       err_msg=f"{name}: column {column}")
            continue
        lists = [_as_numbers(v) for v in b]
        if any(x is not None for x in lists):
            for row, (got, want) in enumerate(zip((_as_numbers(v) for v in a), lists)):
                assert got is not None and got.shape == want.shape, f"{name}: {column} row {row}"
                np.testing.assert_allclose(got, want, rtol=SCORE_RTOL, atol=SCORE_ATOL,
                                           err_msg=f"{name}: column {column} row {row}")
            continue
        assert a.astype(str).tolist() == b.astype(str).tolist(), f"{name}: decision column {column} differs"


def smallest_relative_gap(values) -> float:
    """The smallest relative gap between two distinct values (inf when fewer than two distinct ones)."""
    distinct = np.unique(np.asarray([v for v in values if np.isfinite(v)], dtype=float))
    if distinct.size < 2:
        return float("inf")
    gaps = np.diff(distinct) / np.maximum(np.abs(distinct[1:]), np.abs(distinct[:-1]))
    return float(gaps.min())
