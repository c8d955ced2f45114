"""Randomness of a run derived from its seed: one numpy Generator per generation, torch seeds by path.

A generation's randomness is a pure function of (seed, generation), so a loop restored after generation
g - 1 continues exactly as the uninterrupted one.
"""

from __future__ import annotations

import numpy as np


def generation_rng(seed: int, generation: int) -> np.random.Generator:
    """The only numpy Generator generation `generation` uses: a pure function of (seed, generation)."""
    return np.random.default_rng(np.random.SeedSequence([seed, generation]))


def derived_seed(seed: int, *path: int) -> int:
    """A 31-bit torch seed derived from the run seed and a path such as (generation, tournament)."""
    return int(np.random.SeedSequence([seed, *path]).generate_state(1)[0] & 0x7FFFFFFF)
