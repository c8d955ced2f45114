"""Field metadata that declares a config field's command-line option once, next to the field itself.

    population: int | None = field(default=None, metadata=cli("mu: individuals that survive.", min=2))

`fne.cli_options.config_options(ConfigClass)` turns every such field into a click option (flag, type,
range, choices, default and help), so a setting is typed in one place and the CLI cannot drift from it.
This module imports nothing heavy: library configs use it without depending on click.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

# The commands' default --image-size: resize to 32x32, 3.0x (DARTS) / 3.5x (NB201) cheaper to score than
# 64x64 with the same ranking (fne/data/DATASETS.md, "Image size"); 0 keeps the dataset's own size.
DEFAULT_IMAGE_SIZE = 32
DATA_HELP = ("Dataset: a CIFAR-10 or CIFAR-100 python folder, a folder of class subfolders of PNG/JPEG images, an "
             ".npz, or FORMAT:PATH (fne/data/DATASETS.md); default: the 1,000 CIFAR-10 training images shipped "
             "with fne.")
IMAGE_SIZE_HELP = ("Side in pixels the images are resized to (0 or native: the dataset's own size); 32 scores "
                   "3-3.5x faster than 64 with the same ranking.")


def cli(help: str, **spec: Any) -> dict[str, Any]:
    """Metadata making a dataclass field a CLI option.

    spec: flag ("--name"; default --field-name), min / max (numeric range; min_open / max_open exclude the
    bound), type (a click type for a str field, e.g. a path type), choices (a tuple, or a
    callable giving the allowed names such as a registry's `names`), multiple (a repeatable option for a
    tuple field; otherwise a tuple field is one comma-separated value), path (a file or folder),
    per_space (the default comes from the search space), device (an fne
    device name), image_size (N pixels, or 0 / native), aliases (more flags for the same option), hidden.
    A bool field is a --name/--no-name switch.
    """
    return {"cli": {"help": help, **spec}}


def data_field() -> Any:
    """The `data` field every command's config shares: `--data` (alias `--data-dir`), a dataset spec."""
    return field(default=None, metadata=cli(DATA_HELP, path=True, aliases=("--data-dir",)))


def image_size_field(default: int | None = DEFAULT_IMAGE_SIZE, help: str = IMAGE_SIZE_HELP) -> Any:
    """The `image_size` field every command's config shares: `--image-size N|native` (default 32)."""
    return field(default=default, metadata=cli(help, image_size=True))
