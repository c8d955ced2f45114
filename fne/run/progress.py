"""Progress of a search as a callback: one bar over generations, one over each generation's scoring and
tournaments, with the best score of each heuristic so far as the postfix, and one over the finalists'
training steps, with the rung and the finalists still in contention."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from fne.evolution.loop import GenerationOutcome


class ProgressBars:
    """tqdm bars on stderr (all silent when disabled)."""

    def __init__(self, generations: int, done: int, heuristics: Sequence[str], enabled: bool = True):
        self.enabled = enabled
        self.heuristics = list(heuristics)
        self.bar = tqdm(total=generations + 1, initial=done, desc="generations", unit="gen", disable=not enabled,
                        dynamic_ncols=True)
        self.inner: tqdm | None = None
        self.best: pd.Series | None = None

    def start_scoring(self, generation: int, count: int, population_best: pd.Series | None) -> None:
        """A generation's scoring begins (`count` candidates)."""
        self.best = population_best
        self.inner = tqdm(total=count, desc=f"generation {generation} scoring", unit="eval", leave=False,
                          disable=not self.enabled or not count, dynamic_ncols=True)

    def scored(self, rows: pd.DataFrame) -> None:
        """Some candidates were scored."""
        latest = rows[self.heuristics].min()
        self.best = latest if self.best is None else np.fmin(self.best, latest)
        if self.inner is not None:
            self.inner.set_postfix({name: f"{value:.4g}" for name, value in self.best.items()}, refresh=False)
            self.inner.update(len(rows))

    def end_scoring(self) -> None:
        """The generation's scoring is over."""
        if self.inner is not None:
            self.inner.close()
            self.inner = None

    def on_tournament(self, generation: int, number: int, total: int) -> None:
        """Tournament `number` of `total` has finished."""
        if number == 0:
            self.inner = tqdm(total=total, desc=f"generation {generation} tournaments", unit="supernet",
                              leave=False, disable=not self.enabled, dynamic_ncols=True)
        if self.inner is not None:
            self.inner.update(1)
            if number == total - 1:
                self.end_scoring()

    def on_generation(self, outcome: GenerationOutcome, best: pd.Series) -> None:
        """A generation was selected and written."""
        self.bar.set_postfix({name: f"{value:.4g}" for name, value in best.items()}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        """Close every bar."""
        self.end_scoring()
        self.bar.close()


class FinalistsBar:
    """A tqdm bar over the finalists' training steps (silent when disabled); rung and field size as postfix."""

    def __init__(self, total_steps: int, finalists: int, rungs: Sequence[int], enabled: bool = True):
        self.rungs = tuple(rungs)
        self.bar = tqdm(total=total_steps, desc=f"finalists ({finalists} training)", unit="step",
                        disable=not enabled, dynamic_ncols=True)
        self.bar.set_postfix({"rung": f"1/{len(self.rungs)}", "in contention": finalists}, refresh=False)

    def step(self) -> None:
        """One finalist trained one step."""
        self.bar.update(1)

    def rung_done(self, number: int, trained: int) -> None:
        """Rung `number` (from 0) is over: `trained` finalists reached it; the next holds half of them."""
        left = max(1, -(-trained // 2)) if number < len(self.rungs) - 1 else 1
        self.bar.set_postfix({"rung": f"{min(number + 2, len(self.rungs))}/{len(self.rungs)}",
                              "in contention": left}, refresh=True)

    def close(self) -> None:
        """Close the bar."""
        self.bar.close()
