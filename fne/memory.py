"""Give the heap's freed pages back to the operating system between trainings.

Why: glibc's allocator keeps what a training step frees. A float64 training step of an NB201 finalist at
width 8 allocates and frees about 1.3 GB of activations and convolution buffers; the next network's
optimizer state, allocated at its first step, then lands above them and pins the heap's top, so freed memory
piles up network after network: the NB201 default run's 64 finalists reached 17.8 GB resident while their
live tensors hold 50 MB. `malloc_trim(0)` returns the free pages in the middle of the heap as well
(glibc >= 2.8); called after each finalist's share of a rung, the peak stays at one network's working set
(benchmarks/bench_finalist_memory.py). Other C libraries (musl, macOS, Windows) have no such call and keep
their own policy.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # musl and other Linux C libraries
        return None
    return getattr(libc, "malloc_trim", None)


def release_freed_memory() -> bool:
    """Return the heap's free pages to the OS (glibc's malloc_trim); False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
