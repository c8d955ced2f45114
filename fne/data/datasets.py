"""Opening a dataset from a spec: `sample`, a path whose format is detected, or `format:path`.

    dataset = open_dataset("~/data/flowers", OpenOptions(image_size=32))
    dataset = open_dataset("cifar100:~/data/cifar-100-python")

Formats are tried in registration order (fne/data/formats/__init__.py); a user's own format registers with
`fne.data.dataset.register_format` and is then found by name or by its `detect` function.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fne.data import formats  # noqa: F401 - importing registers the built-in formats
from fne.data.dataset import DATASET_FORMATS, Dataset, OpenOptions
from fne.errors import DataError

logger = logging.getLogger(__name__)

DEFAULT_SPEC = "sample"


def parse_spec(spec: str | Path | None) -> tuple[str | None, Path | None]:
    """(format or None to detect, path or None): "sample", "FORMAT:PATH", or a plain path."""
    if spec is None or str(spec) == DEFAULT_SPEC:
        return DEFAULT_SPEC, None
    text = str(spec)
    name, sep, rest = text.partition(":")
    if sep and name in DATASET_FORMATS:
        return name, Path(rest).expanduser() if rest else None
    if sep and name.isidentifier() and len(name) > 1 and not Path(text).exists():
        raise DataError(f"unknown dataset format {name!r} in {text!r}; expected one of "
                        f"{', '.join(DATASET_FORMATS.names())}, or a path")
    return None, Path(text).expanduser()


def detect_format(path: str | Path) -> str:
    """The name of the first registered format whose detector accepts `path`; DataError if none does."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no dataset at {path}: the path does not exist")
    for name in DATASET_FORMATS.names():
        detect = DATASET_FORMATS.meta(name).get("detect")
        if detect is not None and detect(path):
            return name
    raise DataError(f"unknown dataset format at {path}; expected a CIFAR-10 or CIFAR-100 python folder, a folder "
                    "with one subfolder per class of PNG/JPEG images, or an .npz with images and labels")


def open_dataset(spec: str | Path | None = DEFAULT_SPEC, options: OpenOptions | None = None) -> Dataset:
    """Open the dataset a spec names (see parse_spec), with `options` (defaults: native size, 10% held out)."""
    options = options or OpenOptions()
    name, path = parse_spec(spec)
    if name is None:
        name = detect_format(path)
    elif path is not None and not path.exists():
        raise DataError(f"no dataset at {path}: the path does not exist")
    elif path is None and name != DEFAULT_SPEC:
        raise DataError(f"dataset spec {spec!r} names the format {name!r} but no path; expected {name}:PATH")
    dataset = DATASET_FORMATS[name](path, options)
    logger.info("dataset %s (%s): %d classes, %d train / %d val images of %dx%dx%d", dataset.path, dataset.format,
                dataset.num_classes, dataset.train_size, dataset.val_size, *dataset.image_size, dataset.channels)
    return dataset
