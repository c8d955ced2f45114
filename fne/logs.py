"""Logging set-up in one place: the console level of the commands, and a run's search.log.

Library modules only call `logging.getLogger(__name__)`; the commands decide where records go. Console
records are routed through tqdm (`tqdm.contrib.logging.logging_redirect_tqdm`) while a run is open, so
they do not tear the progress bars.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
VERBOSITY_KEY = "fne.verbosity"  # click context meta: the `fne -v` group option, seen by its commands


def configure_console(verbosity: int) -> None:
    """Console logging for a command: WARNING by default, INFO with -v, DEBUG with -vv."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format=FORMAT)
    logging.getLogger().setLevel(level)


@contextmanager
def run_log(run_dir: Path) -> Iterator[None]:
    """While open: fne's INFO records also go to RUN_DIR/search.log; console records pass through tqdm."""
    logger = logging.getLogger("fne")
    saved = logger.level
    handler = logging.FileHandler(Path(run_dir) / "search.log", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FORMAT))
    logger.addHandler(handler)
    console_level = logging.getLogger().getEffectiveLevel()  # the command's -v level
    logger.setLevel(min(logging.INFO, logger.getEffectiveLevel()))
    try:
        root = logging.getLogger()
        before = set(root.handlers)
        with logging_redirect_tqdm():
            # tqdm's console handler replaces the console one without its level: the fne logger is lowered to
            # INFO for search.log, and without this its INFO records reached the console without -v.
            for console in set(root.handlers) - before:
                console.setLevel(console_level)
            yield
    finally:
        logger.removeHandler(handler)
        handler.close()
        logger.setLevel(saved)
