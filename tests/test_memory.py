"""fne.memory: freed heap pages go back to the OS (glibc); tests/training/test_finalists.py checks its wiring."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fne.memory import release_freed_memory

# In a fresh interpreter, so that the heap's layout is the scenario's and not what earlier tests left: in a
# used heap the small tensors can fall into old holes below the chunks, and glibc then trims the chunks itself.
SCENARIO = """
import json, torch
from fne.memory import release_freed_memory
def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20
first = torch.ones(2**17, dtype=torch.float64)
del first  # glibc raises its mmap threshold above 1 MiB, as a training step's frees do
chunks, pins = [], []
for _ in range(300):
    chunks.append(torch.ones(2**17, dtype=torch.float64))  # 1 MiB each, written
    pins.append(torch.ones(4))  # small, long-lived, above each chunk on the heap
filled = resident_mib()
del chunks
freed = resident_mib()
released = release_freed_memory()
print(json.dumps({"filled": filled, "freed": freed, "released": resident_mib(), "trimmed": released}))
"""


def test_freed_memory_pinned_below_live_tensors_goes_back_to_the_os():
    """300 MiB freed under small live tensors stays resident until released (the finalists' pattern)."""
    if not release_freed_memory():
        pytest.skip("this C library has no malloc_trim (not glibc)")
    result = subprocess.run([sys.executable, "-c", SCENARIO], capture_output=True, text=True, check=True)
    mib = json.loads(result.stdout.strip().splitlines()[-1])
    assert mib["trimmed"]
    if mib["filled"] - mib["freed"] > 100:
        pytest.skip("this allocator returned the freed chunks by itself: nothing left to release")
    assert mib["freed"] - mib["released"] > 200, f"malloc_trim returned under 200 of the 300 MiB freed: {mib}"
