"""Writing results: output paths checked before any work, and atomic writes (a kill leaves the old file or the new one).

`output_file` and `output_folder` are the one check every command runs on its output options before it
loads data or computes anything, so a bad path ends in one OutputError line and leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from fne.errors import OutputError


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Call `write(stream)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The same folder keeps os.replace atomic (one file system); mkstemp keeps concurrent writers apart.
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            # mkstemp makes the file 0600; results should be as readable as any other file the user writes.
            os.chmod(temporary, _new_file_mode(path))
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _new_file_mode(path: Path) -> int:
    """The mode `open(path, "w")` would give: the replaced file's own, else 0666 minus the umask."""
    if path.is_file():
        return path.stat().st_mode & 0o7777
    umask = os.umask(0o022)  # the only portable way to read the umask is to set it and put it back
    os.umask(umask)
    return 0o666 & ~umask


def output_file(path: str | Path, option: str, *, overwrite: bool = False) -> Path:
    """`path` checked as an output file: not a folder, not an existing file unless `overwrite`, creatable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; expected the path of a file (a new name, or a file in it)")
    if path.exists() and not overwrite:
        raise OutputError(f"{option} {path} already exists; pass --force to replace it, or choose a new name")
    _check_creatable(path.parent, option, path)
    return path


def output_folder(path: str | Path, option: str) -> Path:
    """`path` checked as an output folder: an existing folder or one that can be made (nothing is made here)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is a file; expected a folder (new or existing)")
    _check_creatable(path, option, path)
    return path


def _check_creatable(folder: Path, option: str, path: Path) -> None:
    """OutputError unless files can be created in `folder` (a folder on the way that does not exist yet counts
    as its nearest existing ancestor, which must be a writable folder)."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option} {path}: {existing} is a file, not a folder, so nothing can be created under it")
    # Permission bits and os.access do not tell (root passes them; /proc refuses anyway): try a real file.
    try:
        handle, probe = tempfile.mkstemp(prefix=".fne-probe.", dir=existing)
    except OSError as error:
        raise OutputError(f"{option} {path}: cannot write in {existing} ({error.strerror or error})") from None
    os.close(handle)
    os.unlink(probe)
