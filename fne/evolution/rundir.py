"""The run directory of a search: atomic table writes, config.json, checkpoint.json and resume checks.

Layout (see /work/notes/interfaces.md): config.json, history.csv, population.csv, populations.csv (every
generation's population, long format), pareto_front.csv, timings.csv, tournaments.csv, final_population.csv,
best.json, checkpoint.json, search.log. Every file is written to a temporary name in the same folder and
renamed over the old one (`os.replace` is atomic on POSIX and Windows), so a kill leaves either the old or
the new version, never half a file. checkpoint.json is written last in each generation: whatever it
names as completed is on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from fne.atomic import atomic_write
from fne.errors import CheckpointError, ConfigError

RUN_FORMAT = "fne-run"
CHECKPOINT_FORMAT = "fne-checkpoint"
FORMAT_VERSION = 1
# Written floats must read back bit for bit: pandas >= 3 parses exactly by default (and deprecates the option).
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
CHECKPOINT_KEYS = ("format", "format_version", "config_sha256", "seed", "space", "generation", "next_id",
                   "numpy_rng", "torch_seed", "population", "history_rows")


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


def read_config(run_dir: Path) -> dict[str, Any]:
    """config.json of a run directory; CheckpointError when the folder is not an fne run."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise CheckpointError(f"--resume {run_dir}: no such folder; expected a run directory made by `fne search`")
    if not path.is_file():
        raise CheckpointError(f"--resume {run_dir}: no config.json, so this is not an fne run directory")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt: not readable JSON ({error})") from None
    if not isinstance(config, dict) or config.get("format") != RUN_FORMAT:
        raise CheckpointError(f"{path} is not an fne run config (expected \"format\": \"{RUN_FORMAT}\")")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {config.get('format_version')!r}; this fne reads "
                              f"version {FORMAT_VERSION}")
    return config


def read_checkpoint(run_dir: Path, config: dict[str, Any]) -> dict[str, Any] | None:
    """checkpoint.json checked against the run's config; None when no generation completed yet."""
    path = Path(run_dir) / "checkpoint.json"
    if not path.exists():
        return None
    try:
        checkpoint = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt: not readable JSON ({error}); the run cannot be resumed") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an fne checkpoint (expected \"format\": \"{CHECKPOINT_FORMAT}\")")
    missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is corrupt: missing {', '.join(missing)}")
    if checkpoint["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has format version {checkpoint['format_version']!r}; expected "
                              f"{FORMAT_VERSION}")
    if checkpoint["config_sha256"] != config_digest(config):
        raise CheckpointError(f"{path} belongs to another run: its config digest does not match "
                              f"{Path(run_dir) / 'config.json'}")
    if checkpoint["seed"] != config["seed"] or checkpoint["space"] != config["space"]:
        raise CheckpointError(f"{path} is foreign: seed/space {checkpoint['seed']}/{checkpoint['space']} but the "
                              f"run config says {config['seed']}/{config['space']}")
    if not isinstance(checkpoint["population"], list) or not checkpoint["population"]:
        raise CheckpointError(f"{path} is corrupt: its population is empty")
    return checkpoint


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


class _TqdmHandler(logging.Handler):
    """Console log lines written through tqdm, so they do not tear the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break the run
            self.handleError(record)


class RunLog:
    """While a run is open: fne's INFO records go to RUN_DIR/search.log; the console keeps its own level."""

    def __init__(self, run_dir: Path):
        self.logger = logging.getLogger("fne")
        self.saved = (self.logger.level, self.logger.propagate)
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.file = logging.FileHandler(Path(run_dir) / "search.log", encoding="utf-8")
        self.file.setLevel(logging.INFO)
        self.file.setFormatter(formatter)
        # The console shows what it showed before (the CLI's -v level, WARNING by default).
        self.console = _TqdmHandler(level=logging.getLogger().getEffectiveLevel())
        self.console.setFormatter(formatter)
        self.logger.addHandler(self.file)
        self.logger.addHandler(self.console)
        self.logger.setLevel(min(logging.INFO, self.logger.getEffectiveLevel()))
        self.logger.propagate = False

    def close(self) -> None:
        """Detach the handlers and restore the logger."""
        for handler in (self.file, self.console):
            self.logger.removeHandler(handler)
            handler.close()
        self.logger.setLevel(self.saved[0])
        self.logger.propagate = self.saved[1]
