"""The README.md of a GPU check: command, environment, one table per section; rewritten after every section."""

from __future__ import annotations

import datetime
import os
import shlex
import sys
from pathlib import Path

import pandas as pd

from .common import Check, Section, markdown_table


def command_line() -> str:
    """The exact command that ran, as it can be pasted into a shell."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return shlex.join(["python", str(script), *sys.argv[1:]])


def write_readme(check: Check, environment: dict[str, str], sections: list[Section], total_seconds: float,
                 finished: bool) -> Path:
    """Write OUT/README.md atomically from what has run so far."""
    caveat = ("> **--quick run on the CPU: tiny networks and few images. These figures check that the script works; "
              "they are not GPU measurements.**" if check.quick or not check.cuda else
              f"> Measured on {environment.get('GPU', check.device)}.")
    state = "finished" if finished else "still running (this page is rewritten after every section)"
    overview = pd.DataFrame([{"section": s.title, "status": s.status, "seconds": s.seconds,
                              "files": ", ".join(f"`{f.relative_to(check.out)}`" for f in s.files
                                                 if f.is_relative_to(check.out))} for s in sections])
    parts = [
        "# GPU check (issue 12)",
        caveat,
        f"Command (from the repository root):\n\n```bash\n{command_line()}\n```",
        f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}, {state}; {total_seconds / 60:.1f} minutes so far. "
        "How to run it and read it: docs/gpu.md in the repository.",
        "## Environment",
        markdown_table(pd.DataFrame(list(environment.items()), columns=["", "value"])),
        "## Sections",
        markdown_table(overview) if not overview.empty else "(none ran yet)",
    ]
    for section in sections:
        parts += [f"## {section.title}", section.markdown]
    path = check.out / "README.md"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path
