"""The latency table of one device: every part of every space measured once at batch 1, cached on disk.

    table = load_table(TableKey.current("cpu"))          # DeployError naming `fne latency-table` if absent
    table.lookup(Part("darts/op/sep_conv_3x3", 32, 24))   # ms, interpolated between measured widths

One file per device, torch version and thread count under fne's cache folder (`<cache>/latency/`), written
atomically and read back only when its own key matches the one asked for: a table measured on another CPU,
GPU, torch or thread count says nothing about this one. Rows are parts (latency_parts.py) with their median
and interquartile range in ms (timing.py), the fastest of a few interleaved passes, since load from other
processes only ever adds time; a lookup between measured channel counts interpolates linearly
(bilinearly over input and output channels) within the grid, and refuses to extrapolate.
"""

from __future__ import annotations

import bisect
import json
import math
import platform
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fne.atomic import atomic_write
from fne.data.dataset import cache_root
from fne.deploy.latency_parts import Part
from fne.errors import DeployError
from fne.version import __version__

FORMAT = "fne-latency-table"
FORMAT_VERSION = 1
ROW_FIELDS = ("kind", "resolution", "C", "C_in", "stride", "ms", "iqr_ms")


def device_name(device: torch.device) -> str:
    """The hardware behind a device: the GPU's name, or the CPU's model name from /proc/cpuinfo."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


@dataclass(frozen=True)
class TableKey:
    """What a table is valid for: the device type and its hardware, the torch version and the thread count."""

    device: str  # "cpu" or "cuda"
    device_name: str
    torch_version: str
    threads: int

    @classmethod
    def current(cls, device: torch.device | str, threads: int | None = None) -> TableKey:
        """The key of this machine's `device` at `threads` (default: torch's current thread count)."""
        device = torch.device(device)
        return cls(device.type, device_name(device), torch.__version__, threads or torch.get_num_threads())

    def file_name(self) -> str:
        """`<device>-<hardware>-torch<version>-threads<n>.json`, with the hardware name made file-safe."""
        hardware = re.sub(r"[^a-z0-9]+", "-", self.device_name.lower()).strip("-")[:60]
        torch_version = re.sub(r"[^A-Za-z0-9.]+", "_", self.torch_version)
        return f"{self.device}-{hardware}-torch{torch_version}-threads{self.threads}.json"

    def command(self) -> str:
        """The command that measures this table."""
        return f"fne latency-table --device {self.device} --threads {self.threads}"


def table_path(key: TableKey, cache_dir: str | Path | None = None) -> Path:
    """Where the table of `key` lives: <cache>/latency/<key's file name>."""
    return cache_root(cache_dir) / "latency" / key.file_name()


@dataclass
class LatencyTable:
    """Measured parts of one device (ms per batch-1 call) and lookups that interpolate between widths."""

    key: TableKey
    rows: dict[Part, tuple[float, float]] = field(default_factory=dict)  # part -> (median ms, iqr ms)
    min_run_time: float = 0.0
    passes: int = 1
    clock: str = ""  # timing.clock_name: "cpu" (process CPU time, one CPU thread) or "wall"

    def __post_init__(self) -> None:
        self._grids: dict[tuple[str, int, int], tuple[list[int], list[int]]] | None = None

    def add(self, part: Part, median_ms: float, iqr_ms: float = 0.0) -> None:
        """Record one measured part."""
        self.rows[part] = (float(median_ms), float(iqr_ms))
        self._grids = None

    def missing(self, parts: Iterable[Part]) -> list[Part]:
        """The parts not measured yet, in order."""
        return [part for part in parts if part not in self.rows]

    def lookup(self, part: Part) -> float:
        """The part's latency in ms: measured, or interpolated linearly in C and C_in between measured widths."""
        if part in self.rows:
            return self.rows[part][0]
        group = (part.kind, part.resolution, part.stride)
        grids = self._grid_index().get(group)
        if grids is None:
            raise DeployError(f"the latency table {self.key.file_name()} has no {part.kind} at {part.resolution}x"
                              f"{part.resolution} (stride {part.stride}); measure it with `{self.key.command()}` "
                              "and the search's --space and --image-size")
        total = 0.0
        for (c_in, w_in), (c, w) in ((a, b) for a in _bracket(grids[0], part.C_in, part, "C_in")
                                     for b in _bracket(grids[1], part.C, part, "C")):
            corner = Part(part.kind, part.resolution, c, c_in, part.stride)
            if corner not in self.rows:
                raise DeployError(f"the latency table {self.key.file_name()} lacks {corner}; measure it again "
                                  f"with `{self.key.command()} --force`")
            total += w_in * w * self.rows[corner][0]
        return total

    def _grid_index(self) -> dict[tuple[str, int, int], tuple[list[int], list[int]]]:
        if self._grids is None:
            grids: dict[tuple[str, int, int], tuple[set[int], set[int]]] = {}
            for part in self.rows:
                c_ins, cs = grids.setdefault((part.kind, part.resolution, part.stride), (set(), set()))
                c_ins.add(part.C_in)
                cs.add(part.C)
            self._grids = {group: (sorted(a), sorted(b)) for group, (a, b) in grids.items()}
        return self._grids

    def payload(self) -> dict[str, Any]:
        """The JSON document of the table."""
        rows = [{**asdict(part), "ms": ms, "iqr_ms": iqr} for part, (ms, iqr) in sorted(self.rows.items())]
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "fne_version": __version__, **asdict(self.key),
                "batch": 1, "timer": "torch.utils.benchmark blocked_autorange, median", "clock": self.clock,
                "min_run_time_s": self.min_run_time, "passes": self.passes, "rows": rows}


def _bracket(grid: list[int], value: int, part: Part, name: str) -> list[tuple[int, float]]:
    """(grid point, weight) pairs of linear interpolation at `value`; DeployError outside the grid."""
    index = bisect.bisect_left(grid, value)
    if index < len(grid) and grid[index] == value:
        return [(value, 1.0)]
    if index == 0 or index == len(grid):
        raise DeployError(f"{part.kind} at {name}={value} is outside the latency table's measured {name} "
                          f"{grid[0]}..{grid[-1]}; the table does not extrapolate")
    low, high = grid[index - 1], grid[index]
    weight = (value - low) / (high - low)
    return [(low, 1.0 - weight), (high, weight)]


def write_table(table: LatencyTable, path: str | Path) -> Path:
    """Write the table atomically (readers see the old file or the new one, never half of one)."""
    text = json.dumps(table.payload(), indent=1)
    return atomic_write(path, lambda stream: stream.write(text.encode()))


def read_table(path: str | Path, key: TableKey | None = None) -> LatencyTable:
    """Read and check a table file; a corrupt, foreign or mismatched file is a one-line DeployError."""
    path = Path(path)
    command = key.command() if key else "fne latency-table"
    remedy = f"measure it again with `{command} --force`"
    try:
        payload = json.loads(path.read_text())
        if payload.get("format") != FORMAT or payload.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"format {payload.get('format')!r} version {payload.get('format_version')!r}, expected "
                             f"{FORMAT!r} version {FORMAT_VERSION}")
        stored = TableKey(str(payload["device"]), str(payload["device_name"]), str(payload["torch_version"]),
                          int(payload["threads"]))
        table = LatencyTable(stored, min_run_time=float(payload.get("min_run_time_s", 0.0)),
                             passes=int(payload.get("passes", 1)), clock=str(payload.get("clock", "")))
        for row in payload["rows"]:
            part = Part(str(row["kind"]), int(row["resolution"]), int(row["C"]), int(row["C_in"]), int(row["stride"]))
            ms, iqr = float(row["ms"]), float(row["iqr_ms"])
            if not (math.isfinite(ms) and ms > 0 and math.isfinite(iqr) and iqr >= 0):
                raise ValueError(f"{part.kind} at {part.resolution} has latency {ms} ms (iqr {iqr})")
            table.add(part, ms, iqr)
    except FileNotFoundError:
        raise DeployError(f"no latency table at {path}; measure it with `{command}`") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise DeployError(f"latency table {path} is corrupt ({type(error).__name__}: {error}); {remedy}") from None
    if key is not None and stored != key:
        raise DeployError(f"latency table {path} was measured for {stored}, not {key}; {remedy}")
    return table


def load_table(key: TableKey, cache_dir: str | Path | None = None) -> LatencyTable:
    """The cached table of `key`; DeployError naming the command that measures it when there is none."""
    return read_table(table_path(key, cache_dir), key)


Measure = Callable[[Part], tuple[float, float]]  # part -> (median ms, iqr ms)


def fill_table(table: LatencyTable, parts: Iterable[Part], measure: Measure, path: str | Path | None = None,
               passes: int = 1, save_every: int = 50, progress: Callable[[Part], None] | None = None) -> int:
    """Measure the parts the table lacks in `passes` passes, each in its own seeded order, keeping each part's
    fastest median; saves the table every `save_every` parts and after each pass; returns how many parts."""
    todo = table.missing(parts)
    for number in range(passes):
        # Load on a shared machine comes in bursts: shuffled passes spread each part's timings over the
        # whole measurement instead of timing neighbours (one space, one width) in the same burst.
        order = [todo[i] for i in np.random.default_rng(number).permutation(len(todo))] if number else todo
        for count, part in enumerate(order, start=1):
            ms, iqr = measure(part)
            if part not in table.rows or ms < table.rows[part][0]:  # load from other processes only adds time
                table.add(part, ms, iqr)
            if progress is not None:
                progress(part)
            if path is not None and count % save_every == 0:
                write_table(table, path)  # an interrupted measurement keeps what it measured
        if path is not None and todo:
            write_table(table, path)
    return len(todo)
