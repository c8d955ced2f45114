"""fne's CPU threading rule, shared by every command: passive OpenMP waiting and one thread per usable core.

Why passive waiting: torch's CPU wheel runs its intra-op pool on GNU OpenMP (libgomp), whose idle
threads spin for GOMP_SPINCOUNT = 300,000 iterations at every barrier before they sleep. Beside one
other busy process on a 2-core machine, the two threads of a scoring probe then wait on each other
while the partner is descheduled: one evaluation went from 1.5 s to 60-72 s (30x) where a fair share of
the cores costs 2x. With OMP_WAIT_POLICY=PASSIVE libgomp sets the spin count to 0 and waiting threads
sleep (benchmarks/bench_threads.py measures both).

libgomp reads the variable once, when it is loaded, and it is loaded by `import torch` (run any command
with OMP_DISPLAY_ENV=VERBOSE to see GOMP_SPINCOUNT printed during the import). Setting it afterwards
changes nothing, so this module never imports torch at module level, the command modules import torch
only inside their bodies, and `prepare_openmp` runs before the first import of torch.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

PASSIVE_WAIT = ("OMP_WAIT_POLICY", "PASSIVE")
THREADS_ENV = "FNE_THREADS"  # the thread count when none is given (the --threads option reads it too)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity outside Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """FNE_THREADS when set (a positive integer), else the usable cores."""
    text = os.environ.get(THREADS_ENV, "").strip()
    if not text:
        return usable_cores()
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{THREADS_ENV}={text!r}: expected a positive number of threads")
    return int(text)


def prepare_openmp() -> bool:
    """Ask OpenMP for passive waiting (unless the user chose a policy); False if too late (torch already loaded)."""
    name, value = PASSIVE_WAIT
    chosen_before = name in os.environ
    os.environ.setdefault(name, value)  # inherited by spawned workers (dask, benchmarks) as well
    if "torch" in sys.modules and not chosen_before:
        log.warning("torch was imported before fne set %s=%s, so its OpenMP threads may spin-wait and slow down "
                    "badly beside other busy processes; set %s=%s in the environment", name, value, name, value)
        return False
    return True


def apply_thread_rule(threads: int | None = None) -> int:
    """Apply the rule: passive OpenMP waiting, then `threads` (default: FNE_THREADS, else usable cores) threads."""
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads}: expected a positive number of threads")
    prepare_openmp()
    import torch  # after prepare_openmp, so that libgomp reads the passive policy when it loads

    count = threads if threads is not None else default_threads()
    torch.set_num_threads(count)
    if torch.get_num_interop_threads() != count:
        try:
            torch.set_num_interop_threads(count)
        except RuntimeError:  # only settable before the first inter-op work; intra-op threads matter most
            log.debug("inter-op threads already started; keeping %d", torch.get_num_interop_threads())
    log.info("torch threads: %d intra-op, %d inter-op, %s=%s", torch.get_num_threads(),
             torch.get_num_interop_threads(), PASSIVE_WAIT[0], os.environ.get(PASSIVE_WAIT[0]))
    return count


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one torch thread, then restore the count (for work too small to split across threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
