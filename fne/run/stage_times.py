"""Where a run's CPU time goes: one row per generation and stage in stage_times.csv.

Stages: `breeding` (new children, with the size budget's check of each), `scoring` (the evaluator scoring a
generation's children), `tournaments` (the selection of a tournament generation: the candidates' training),
`pareto` (the selection of any other generation) and `final_pick` (the finalists' training, when on, and
the final ranking). CPU seconds are this process's (time.process_time: every thread, user + system), so
they add up to the run's cost on any machine load, where wall seconds do not; with dask workers the
scoring's CPU is spent in the workers and not counted. The file is rewritten atomically each generation
before the checkpoint; a resumed run keeps the rows of the generations its checkpoint completed, so the
totals cover the whole run across processes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from fne.atomic import atomic_write

STAGES = ("breeding", "scoring", "tournaments", "pareto", "final_pick")
COLUMNS = ("generation", "stage", "cpu_seconds", "wall_seconds")


class Stopwatch:
    """CPU (this process, every thread) and wall seconds since it was made."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def elapsed(self) -> tuple[float, float]:
        """(CPU seconds, wall seconds) so far."""
        return time.process_time() - self.cpu, time.perf_counter() - self.wall


class StageTimes:
    """The run's stage rows, kept in memory and written whole (stage_times.csv) after each change."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.rows: list[dict] = []

    def restore(self, generation: int) -> None:
        """Keep the rows of generations up to `generation` (what the checkpoint completed) from the file."""
        if self.path.exists():
            table = pd.read_csv(self.path)
            self.rows = table[table["generation"] <= generation].to_dict("records")

    @contextmanager
    def measure(self, generation: int, stage: str) -> Iterator[None]:
        """Add the CPU and wall seconds of the block as one row (not written until `write`)."""
        watch = Stopwatch()
        try:
            yield
        finally:
            self.add(generation, stage, watch)

    def add(self, generation: int, stage: str, watch: Stopwatch) -> None:
        """Add the seconds since `watch` started as one row of `stage` (not written until `write`)."""
        cpu, wall = watch.elapsed()
        self.rows.append({"generation": generation, "stage": stage, "cpu_seconds": cpu, "wall_seconds": wall})

    def write(self) -> None:
        """Rewrite stage_times.csv atomically."""
        text = pd.DataFrame(self.rows, columns=list(COLUMNS)).to_csv(index=False)
        atomic_write(self.path, lambda stream: stream.write(text.encode("utf-8")))

    @classmethod
    def read(cls, path: Path) -> StageTimes:
        """The rows a run wrote (none if it wrote no stage_times.csv)."""
        times = cls(path)
        times.restore(2**62)
        return times

    def totals(self) -> dict[str, float]:
        """CPU seconds per stage over the whole run (every stage named, 0 where none ran), and their sum."""
        sums = {stage: 0.0 for stage in STAGES}
        for row in self.rows:
            sums[row["stage"]] = sums.get(row["stage"], 0.0) + float(row["cpu_seconds"])
        return {**{stage: round(value, 3) for stage, value in sums.items()}, "total": round(sum(sums.values()), 3)}
