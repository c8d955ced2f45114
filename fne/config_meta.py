"""Field metadata that declares a config field's command-line option once, next to the field itself.

    population: int | None = field(default=None, metadata=cli("mu: individuals that survive.", min=2))

`fne.cli_options.config_options(ConfigClass)` turns every such field into a click option (flag, type,
range, choices, default and help), so a setting is typed in one place and the CLI cannot drift from it.
This module imports nothing heavy: library configs use it without depending on click.
"""

from __future__ import annotations

from typing import Any


def cli(help: str, **spec: Any) -> dict[str, Any]:
    """Metadata making a dataclass field a CLI option.

    spec: flag ("--name"; default --field-name), min / max (numeric range; min_open / max_open exclude the
    bound), type (a click type for a str field, e.g. a path type), choices (a tuple, or a
    callable giving the allowed names such as a registry's `names`), multiple (a repeatable option for a
    tuple field; otherwise a tuple field is one comma-separated value), path (a file or folder),
    per_space (the default comes from the search space), device (an fne
    device name), hidden. A bool field is a --name/--no-name switch.
    """
    return {"cli": {"help": help, **spec}}
