"""The run recorder: the one owner of a search's files (pymoo `core/callback.py` shape, called per generation).

Per generation it appends the new rows of history.csv, populations.csv (every generation's population,
long format), timings.csv and tournaments.csv (append-only: the I/O of a generation does not grow with
the run), rewrites the small population.csv and pareto_front.csv atomically, and writes checkpoint.json
last. The checkpoint names what is complete: the generation, the byte length of every append-only table,
the SHA-256 of history.csv up to that length, the ids of the population (whose records are history rows)
and the random state the next generation starts from. Resuming truncates each table to its recorded
length (dropping rows of a generation that never reached its checkpoint), refuses a history whose bytes
do not hash to the recorded digest, and rebuilds the population from history rows, so an edited
checkpoint or history is refused rather than silently changing the result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from fne.errors import CheckpointError
from fne.evolution.individual import Individual, apply_schema, from_row
from fne.evolution.loop import GenerationOutcome
from fne.evolution.seeds import derived_seed, generation_rng
from fne.run import rundir
from fne.run.config import SearchConfig
from fne.run.stage_times import StageTimes

APPEND_ONLY = ("history.csv", "populations.csv", "timings.csv", "tournaments.csv")


class AppendOnlyTable:
    """A CSV file that only grows: rows are appended with one write + fsync, and its length is tracked."""

    def __init__(self, path: Path, digest: bool = False):
        self.path = path
        self.columns: list[str] | None = None
        self.size = 0
        self.hash = hashlib.sha256() if digest else None
        if path.exists():
            self._adopt()

    def _adopt(self) -> None:
        data = self.path.read_bytes()
        self.size = len(data)
        if self.hash is not None:
            self.hash = hashlib.sha256(data)
        header = data.split(b"\n", 1)[0].decode("utf-8") if data else ""
        self.columns = header.split(",") if header else None

    def append(self, frame: pd.DataFrame) -> None:
        """Append these rows (the header first if the file is new); columns must match the header."""
        if frame.empty:
            return
        if self.columns is not None and sorted(self.columns) != sorted(map(str, frame.columns)):
            raise CheckpointError(f"{self.path}: new rows have columns {list(frame.columns)}, the table has "
                                  f"{self.columns}")
        header = self.columns is None
        if not header:
            frame = frame[self.columns]
        data = frame.to_csv(index=False, header=header).encode("utf-8")
        with self.path.open("ab") as stream:
            stream.write(data)
            stream.flush()
            rundir.fsync(stream)
        self.size += len(data)
        if self.hash is not None:
            self.hash.update(data)
        if header:
            self.columns = list(map(str, frame.columns))

    def truncate(self, size: int) -> None:
        """Cut the file back to `size` bytes (what a checkpoint recorded as complete)."""
        actual = self.path.stat().st_size if self.path.exists() else 0
        if actual < size:
            raise CheckpointError(f"{self.path} has {actual} bytes, the checkpoint recorded {size}: the run "
                                  "directory is corrupt")
        if actual > size:
            with self.path.open("r+b") as stream:
                stream.truncate(size)
                rundir.fsync(stream)
        if size == 0 and self.path.exists():
            self.path.unlink()
        self.columns, self.size = None, 0
        if self.path.exists():
            self._adopt()

    def digest(self) -> str:
        """SHA-256 (hex) of the bytes written so far."""
        return self.hash.hexdigest() if self.hash is not None else ""


@dataclass(frozen=True)
class RestoredState:
    """What a checkpoint restores: the loop's position, its population and every genotype evaluated."""

    generation: int
    next_id: int
    population: tuple[Individual, ...]
    seen: set[str]
    history: pd.DataFrame


class RunRecorder:
    """Writes one run directory: config.json once, then every generation's tables and checkpoint."""

    def __init__(self, run_dir: Path, config: SearchConfig, config_dict: dict[str, Any]):
        self.run_dir = Path(run_dir)
        self.config = config
        if not (self.run_dir / "config.json").exists():  # a new run: the resolved config first (timm's args.yaml)
            rundir.atomic_write_json(self.run_dir / "config.json", config_dict)
        self.config_sha256 = rundir.config_digest(config_dict)  # computed once, not re-read per generation
        self.tables = {name: AppendOnlyTable(self.run_dir / name, digest=name == "history.csv")
                       for name in APPEND_ONLY}
        self.history_rows = 0
        self.stages = StageTimes(self.run_dir / "stage_times.csv")  # the search adds its stages' CPU time

    @property
    def score_names(self) -> tuple[str, ...]:
        """The score columns of this run's tables."""
        return self.config.heuristics

    def on_generation(self, outcome: GenerationOutcome, timing: dict[str, Any]) -> None:
        """Write the generation's rows and tables, then its checkpoint."""
        names = self.score_names
        history = outcome.history_rows(names)
        population = outcome.population_table(names)
        self.tables["history.csv"].append(history)
        self.history_rows += len(history)
        self.tables["populations.csv"].append(population.assign(population_generation=outcome.generation)
                                              .pipe(apply_schema, names))
        self.tables["timings.csv"].append(pd.DataFrame([{"generation": outcome.generation, **timing,
                                                         "selection": outcome.selection.kind}]))
        self.tables["tournaments.csv"].append(pd.DataFrame(list(outcome.selection.tournaments)))
        rundir.atomic_write_csv(self.run_dir / "population.csv", population)
        rundir.atomic_write_csv(self.run_dir / "pareto_front.csv", population[population["front"] == 0])
        self.stages.write()
        self._checkpoint(outcome)

    def _checkpoint(self, outcome: GenerationOutcome) -> None:
        generation, seed = outcome.generation, self.config.seed
        rundir.atomic_write_json(self.run_dir / "checkpoint.json", {
            "format": rundir.CHECKPOINT_FORMAT, "format_version": rundir.CHECKPOINT_VERSION,
            "config_sha256": self.config_sha256, "seed": seed, "space": self.config.space,
            "generation": generation, "next_id": outcome.next_id,
            # The state generation + 1 starts from (re-derived from the seed and checked on resume).
            "numpy_rng": generation_rng(seed, generation + 1).bit_generator.state,
            "torch_seed": derived_seed(seed, generation + 1, 0),
            "population_ids": [ind.id for ind in outcome.population], "history_rows": self.history_rows,
            "history_sha256": self.tables["history.csv"].digest(),
            "table_bytes": {name: table.size for name, table in self.tables.items()}})

    def finish(self, final: pd.DataFrame, best: dict[str, Any], finalists: pd.DataFrame | None = None) -> None:
        """The finished run's final population (with its `best` flag), finalists.csv if any, stage_times.csv and
        best.json."""
        rundir.atomic_write_csv(self.run_dir / "final_population.csv", final)
        if finalists is not None:
            rundir.atomic_write_csv(self.run_dir / "finalists.csv", finalists)
        self.stages.write()
        rundir.atomic_write_json(self.run_dir / "best.json", best, strict=True)

    def restore(self, checkpoint: dict[str, Any]) -> RestoredState:
        """Truncate the tables to the checkpoint, verify them against it and rebuild the loop's state."""
        path = self.run_dir / "checkpoint.json"
        generation = int(checkpoint["generation"])
        expected = generation_rng(self.config.seed, generation + 1).bit_generator.state
        if checkpoint["numpy_rng"] != json.loads(json.dumps(expected)):
            raise CheckpointError(f"{path} holds a random state that this run's seed does not produce: it is "
                                  "corrupt or foreign")
        for name, table in self.tables.items():
            table.truncate(int(checkpoint["table_bytes"].get(name, 0)))
        self.stages.restore(generation)
        if self.tables["history.csv"].digest() != checkpoint["history_sha256"]:
            raise CheckpointError(f"{self.run_dir / 'history.csv'} does not match {path} (its SHA-256 differs): "
                                  "the history was edited or the checkpoint is foreign; the run cannot be resumed")
        history = rundir.read_table(self.run_dir / "history.csv")
        if len(history) != checkpoint["history_rows"]:
            raise CheckpointError(f"{self.run_dir / 'history.csv'} has {len(history)} rows, the checkpoint expects "
                                  f"{checkpoint['history_rows']}: the run directory is corrupt")
        self.history_rows = len(history)
        population = self._population(history, checkpoint["population_ids"], path)
        return RestoredState(generation, int(checkpoint["next_id"]), population, set(history["genotype"]), history)

    def _population(self, history: pd.DataFrame, ids: Sequence[Any], path: Path) -> tuple[Individual, ...]:
        by_id = {int(row["id"]): row for row in history.to_dict("records")}
        missing = [i for i in ids if not isinstance(i, int) or i not in by_id]
        if missing or not ids:
            raise CheckpointError(f"{path} names population ids {missing or '[]'} that are not in history.csv: "
                                  "the checkpoint is corrupt or was edited")
        return tuple(from_row(by_id[i], self.score_names) for i in ids)
