"""The run directory of a search: the one module that reads and writes it, for search, export and report.

Layout: config.json (the resolved settings, written once), history.csv (one row per evaluated individual,
append-only), populations.csv (every generation's population, long format, append-only), timings.csv,
tournaments.csv, population.csv and pareto_front.csv (the current population and its first front),
final_population.csv and best.json (when finished), checkpoint.json (written last in each generation:
whatever it names as completed is on disk, see recorder.py) and search.log. Whole files are written to a
temporary name in the same folder and renamed over the old one, so a kill leaves either the old or the
new version, never half a file.

"The best individual" of a run has one definition, `best_of_run`: the search's own pick once the run has
finished (best.json), otherwise the same rule applied to the current population.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fne.atomic import atomic_write
from fne.data.dataset import Dataset
from fne.data.source import data_difference
from fne.errors import CheckpointError, ConfigError
from fne.evolution.selection import rank_combined

RUN_FORMAT = "fne-run"
CHECKPOINT_FORMAT = "fne-checkpoint"
FORMAT_VERSION = 1  # of config.json and the tables
CHECKPOINT_VERSION = 2  # 2: population by history ids, table lengths and the history digest
LEGACY_HEURISTICS = ("ntk", "linear_regions", "grad_corr")  # of run configs that do not name theirs
# Written floats must read back bit for bit: pandas >= 3 parses exactly by default (and deprecates the option).
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
CHECKPOINT_KEYS = ("format", "format_version", "config_sha256", "seed", "space", "generation", "next_id",
                   "numpy_rng", "torch_seed", "population_ids", "history_rows", "history_sha256", "table_bytes")


def fsync(stream: Any) -> None:
    """Flush a binary stream's data to the disk."""
    os.fsync(stream.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write UTF-8 text atomically (temporary file, fsync, rename)."""
    atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))


def atomic_write_csv(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame as CSV atomically (shortest round-trip floats; read back with `read_table`)."""
    atomic_write_text(path, frame.to_csv(index=False))


def atomic_write_json(path: Path, data: Any, strict: bool = False) -> None:
    """Write JSON atomically; strict=True writes NaN and infinities as null (plain JSON for other tools),
    otherwise as Python's `NaN`/`Infinity` extension, which Python reads back exactly."""
    if strict:
        data = _strict(data)
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=not strict) + "\n")


def _strict(data: Any) -> Any:
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: _strict(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [_strict(value) for value in data]
    return data


def config_digest(config: dict[str, Any]) -> str:
    """SHA-256 of a config dict in canonical JSON: ties a checkpoint to the run it belongs to."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()


def prepare_new_run(out: Path) -> Path:
    """Create `out` (or accept an empty folder); refuse a non-empty one, which would be overwritten."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; expected a new or empty folder for the run directory")
    if out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"--out {out} is not empty; choose a new folder, or continue that run with "
                          f"--resume {out}")
    out.mkdir(parents=True, exist_ok=True)
    return out


def remove_unstarted_run(run_dir: Path, created: bool) -> None:
    """Remove what a new run wrote before its first checkpoint (the folder too, if the run made it)."""
    for name in ("config.json", "search.log", *(f"{table}.csv" for table in ("history", "populations", "timings",
                                                                             "tournaments"))):
        (run_dir / name).unlink(missing_ok=True)
    if created and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _read_json(path: Path, consequence: str = "") -> Any:
    """A run file's JSON; CheckpointError naming the file when it is not readable JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt: not readable JSON ({error}){consequence}") from None


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json of a run directory; CheckpointError when the folder is not an fne run."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such folder; expected a run directory made by `fne search`")
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not an fne run directory (no config.json; make one with `fne search`)")
    config = _read_json(path)
    # A hand-written config may leave the format out; a wrong one is refused.
    if not isinstance(config, dict) or config.get("format", RUN_FORMAT) != RUN_FORMAT:
        raise CheckpointError(f"{path} is not an fne run config (expected \"format\": \"{RUN_FORMAT}\")")
    if config.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {config.get('format_version')!r}; this fne reads "
                              f"version {FORMAT_VERSION}")
    return config


def check_dataset(run_dir: Path, config: dict[str, Any], dataset: Dataset) -> None:
    """CheckpointError, one line naming both, when a resumed run's data is not the data it was started on."""
    difference = data_difference(config.get("dataset"), dataset)
    if difference is not None:
        raise CheckpointError(f"{run_dir} was searched on {difference}; --resume continues on the run's own data "
                              "(restore it, or start a new run)")


def read_checkpoint(run_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """checkpoint.json checked against the run's config; None when no generation completed yet."""
    path = Path(run_dir) / "checkpoint.json"
    if not path.exists():
        return None
    checkpoint = _read_json(path, "; the run cannot be resumed")
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an fne checkpoint (expected \"format\": \"{CHECKPOINT_FORMAT}\")")
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is corrupt: missing {', '.join(missing)}")
    if checkpoint["format_version"] != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path} has format version {checkpoint['format_version']!r}; this fne resumes "
                              f"version {CHECKPOINT_VERSION}")
    if checkpoint["config_sha256"] != config_digest(config):
        raise CheckpointError(f"{path} belongs to another run: its config digest does not match "
                              f"{Path(run_dir) / 'config.json'}")
    if checkpoint["seed"] != config["seed"] or checkpoint["space"] != config["space"]:
        raise CheckpointError(f"{path} is foreign: seed/space {checkpoint['seed']}/{checkpoint['space']} but the "
                              f"run config says {config['seed']}/{config['space']}")
    if not isinstance(checkpoint["population_ids"], list) or not checkpoint["population_ids"]:
        raise CheckpointError(f"{path} is corrupt: its population is empty")
    if not isinstance(checkpoint["table_bytes"], dict):
        raise CheckpointError(f"{path} is corrupt: table_bytes is not a mapping")
    _check_population_ids(Path(run_dir), checkpoint)
    return checkpoint


def _check_population_ids(run_dir: Path, checkpoint: dict[str, Any]) -> None:
    """CheckpointError unless the checkpoint's population ids are populations.csv's for its generation, in order."""
    table = read_table(run_dir / "populations.csv")
    generation = checkpoint["generation"]
    recorded = []
    if {"id", "population_generation"} <= set(table.columns):
        recorded = [int(i) for i in table.loc[table["population_generation"] == generation, "id"]]
    if list(checkpoint["population_ids"]) != recorded:
        raise CheckpointError(f"{run_dir / 'checkpoint.json'} names population ids {checkpoint['population_ids']} "
                              f"but populations.csv holds {recorded} for generation {generation}: the checkpoint is "
                              "corrupt or was edited")


def read_table(path: Path, upto_generation: int | None = None, column: str = "generation") -> pd.DataFrame:
    """A run table (empty if absent), keeping rows whose `column` <= upto_generation (a kill may leave more)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return pd.DataFrame()
    try:
        table = pd.read_csv(path, keep_default_na=False, na_values=[""], **_EXACT_FLOATS)
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt: not a readable CSV table ({error})") from None
    if upto_generation is not None and column in table.columns:
        table = table[table[column] <= upto_generation].reset_index(drop=True)
    return table


# ---------------------------------------------------------------- reading a run (export, report)
def run_space(config: dict[str, Any]) -> str:
    """The search space named by a run's config.json."""
    return str(config.get("space", "darts"))


def run_objectives(config: dict[str, Any], columns: Any, ranked: bool = False) -> tuple[str, ...]:
    """A run's minimised columns: all Pareto objectives' columns, or (ranked=True) the scores its aggregate ranks."""
    heuristics = config.get("heuristics") or config.get("search", {}).get("heuristics") or LEGACY_HEURISTICS
    named = heuristics if ranked else (config.get("objectives") or heuristics)
    # A grouped objective "a+b" is a rank aggregate within each pool, not a column: report its members.
    named = tuple(dict.fromkeys(member for name in named for member in name.split("+")))
    present = tuple(name for name in named if name in columns)
    if not present:
        raise CheckpointError(f"run tables have none of the objective columns {list(named)}")
    return present


def without_errors(table: pd.DataFrame) -> pd.DataFrame:
    """Rows whose evaluation reported no error."""
    if "error" not in table.columns:
        return table
    errors = table["error"]
    return table[(errors.isna() | (errors.astype(str).str.strip() == "")).to_numpy()]


def read_best(run_dir: Path) -> dict[str, Any] | None:
    """best.json of a finished run (None while it runs); CheckpointError if unreadable."""
    path = Path(run_dir) / "best.json"
    if not path.is_file():
        return None
    best = _read_json(path)
    if not isinstance(best, dict) or "genotype" not in best or "id" not in best:
        raise CheckpointError(f"{path} is not an fne best-individual record (no genotype/id)")
    return {key: (math.nan if value is None else value) for key, value in best.items()}


def best_of_run(run_dir: str | Path, config: dict[str, Any] | None = None) -> pd.Series:
    """The run's best individual: best.json once finished, else the smallest rank_combined of the population.

    population.csv's rank_combined is the search's aggregate over the current population, the pool its
    final pick ranks by default (see `SearchConfig.final_pick`), so a running run answers by the same rule.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir) if config is None else config
    best = read_best(run_dir)
    if best is not None:
        return pd.Series(best)
    paths = [run_dir / name for name in ("population.csv", "pareto_front.csv") if (run_dir / name).is_file()]
    if not paths:
        raise CheckpointError(f"{run_dir} has no population.csv yet (no generation has finished)")
    table = read_table(paths[0])
    table = (without_errors(table) if len(without_errors(table)) else table).reset_index(drop=True)
    if table.empty:
        raise CheckpointError(f"{paths[0]} is empty")
    if "rank_combined" in table.columns and table["rank_combined"].notna().all():
        scores = table["rank_combined"].to_numpy(dtype=float)
    else:  # a hand-made table: the linear rank sum of the ranked scores over it
        scores = rank_combined(table, run_objectives(config, table.columns, ranked=True))
    return table.iloc[int(np.argmin(scores))]


def individual_of_run(run_dir: str | Path, individual_id: str) -> pd.Series:
    """The history row of one individual by id; CheckpointError naming the valid range if absent."""
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} has no history.csv")
    table = read_table(path)
    matches = table[table["id"].astype(str) == str(individual_id).strip()]
    if matches.empty:
        raise CheckpointError(f"no individual with id {individual_id!r} in {path} (ids run "
                              f"{table['id'].min()}..{table['id'].max()})")
    return matches.iloc[-1]
