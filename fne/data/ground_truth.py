"""Ground truth: a CSV of architecture strings and their true accuracy (NAS-Bench-201's table), checked row by row.

The one reader behind `fne search --ground-truth` and `plot_scores`. Rows are numbered as in a spreadsheet:
the header is row 1, and blank lines count, so a message's row is the file's line. Every accuracy must be a
number in [0, 100]; an architecture listed twice with two accuracies is refused (which one is true?), an
identical repeat is dropped with a warning (it would count twice in a rank correlation).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from fne.errors import DataError, GenotypeError
from fne.genotopheno.spaces import SearchSpace

log = logging.getLogger(__name__)

ACCURACY_RANGE = (0.0, 100.0)  # percent


def read_ground_truth(path: str | Path, space: SearchSpace, arch_column: str = "arch_str",
                      accuracy_column: str = "cifar10_test", *, canonical: Callable[[str], str] | None = None,
                      keep_prefixes: Sequence[str] = ()) -> pd.DataFrame:
    """The CSV's architecture and accuracy columns, one row per architecture, indexed by canonical genotype.

    `canonical` maps a row's text to its canonical genotype (default `space.canonical`; the validation study
    passes `space.table_genotype`); columns whose names start with one of `keep_prefixes` are carried along as
    numbers (NaN where empty), such as another method's scores of the same architectures.
    """
    path = Path(path)
    canonical = canonical or space.canonical
    header, rows = _read_rows(path, arch_column, accuracy_column)
    arch_at, accuracy_at = header.index(arch_column), header.index(accuracy_column)
    keep = [name for name in header if name not in (arch_column, accuracy_column)
            and any(name.startswith(prefix) for prefix in keep_prefixes)]
    keep_at = [header.index(name) for name in keep]
    first_row: dict[str, tuple[int, float]] = {}  # canonical genotype -> (row, accuracy) of its first listing
    kept: list[tuple[str, str, float]] = []
    repeats: list[tuple[int, int]] = []
    for row, cells in rows:
        arch = cells[arch_at].strip()
        if not arch:
            raise DataError(f"ground-truth CSV {path}, row {row}: empty {arch_column}; expected an architecture "
                            f"string of the {space.name} space")
        accuracy = _accuracy(cells[accuracy_at], path, row, accuracy_column)
        try:
            genotype = canonical(arch)
        except GenotypeError as error:
            raise GenotypeError(f"ground-truth CSV {path}, row {row}, column {arch_column!r}: {error}") from None
        if genotype in first_row:
            earlier, known = first_row[genotype]
            if known != accuracy:
                raise DataError(f"ground-truth CSV {path}: rows {earlier} and {row} give {arch} two accuracies, "
                                f"{known:g} and {accuracy:g}; expected one accuracy per architecture")
            repeats.append((row, earlier))
            continue
        first_row[genotype] = (row, accuracy)
        kept.append((genotype, arch, accuracy, [_number(cells[i], path, row, header[i]) for i in keep_at]))
    if not kept:
        raise DataError(f"ground-truth CSV {path} has no rows; expected a header and one row per architecture")
    if repeats:
        row, earlier = repeats[0]
        log.warning("ground-truth CSV %s: dropped %d duplicate row(s) (row %d repeats row %d)", path, len(repeats),
                    row, earlier)
    table = pd.DataFrame([(arch, accuracy, *extra) for _, arch, accuracy, extra in kept],
                         columns=[arch_column, accuracy_column, *keep],
                         index=pd.Index([genotype for genotype, *_ in kept], name="canonical"))
    return table


def accuracy_by_genotype(table: pd.DataFrame, accuracy_column: str = "cifar10_test") -> dict[str, float]:
    """Canonical genotype -> true accuracy of a table from `read_ground_truth`."""
    return dict(zip(table.index, table[accuracy_column].astype(float), strict=True))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (a run records it to notice a ground truth edited before --resume)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_rows(path: Path, arch_column: str, accuracy_column: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(row number, cells)]) of a CSV; blank lines are skipped but keep their number."""
    expected = f"expected a CSV with columns {arch_column!r} and {accuracy_column!r}"
    if path.is_dir():
        raise DataError(f"ground-truth CSV {path} is a folder; {expected}")
    if not path.is_file():
        raise DataError(f"ground-truth CSV {path} does not exist; {expected}")
    rows: list[tuple[int, list[str]]] = []
    try:
        # utf-8-sig: spreadsheet exports often start with a byte-order mark, which would rename the first column.
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.reader(stream)
            header = [name.strip() for name in next(reader, [])]
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    rows.append((reader.line_num, cells))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise DataError(f"ground-truth CSV {path} is not a readable text CSV ({type(error).__name__}: "
                        f"{' '.join(reason.split())}); {expected}") from None
    missing = [name for name in (arch_column, accuracy_column) if name not in header]
    if missing:
        raise DataError(f"ground-truth CSV {path} has no column {missing[0]!r}; its columns are "
                        f"{', '.join(header) or '(none: the file is empty)'}")
    for row, cells in rows:
        if len(cells) != len(header):
            raise DataError(f"ground-truth CSV {path}, row {row}: {len(cells)} fields, but the header has "
                            f"{len(header)}")
    return header, rows


def _number(text: str, path: Path, row: int, column: str) -> float:
    """A carried-along column's number (NaN when empty); DataError naming the row if it is not a number."""
    if not text.strip():
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(f"ground-truth CSV {path}, row {row}: {column}={text.strip()!r} is not a number") from None


def _accuracy(text: str, path: Path, row: int, accuracy_column: str) -> float:
    """The accuracy in a cell, in percent; DataError naming the row if empty, not a number or out of range."""
    low, high = ACCURACY_RANGE
    expected = f"expected an accuracy in percent, {low:g} to {high:g}"
    text = text.strip()
    if not text:
        raise DataError(f"ground-truth CSV {path}, row {row}: empty {accuracy_column}; {expected}")
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"ground-truth CSV {path}, row {row}: {accuracy_column}={text!r} is not a number; "
                        f"{expected}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise DataError(f"ground-truth CSV {path}, row {row}: {accuracy_column}={text!r} is outside "
                        f"[{low:g}, {high:g}]; {expected}")
    return value
