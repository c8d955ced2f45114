"""The project's shared data beside the checkout (../shared/data): where each file comes from, and a skip that says so.

A clone without ../shared still passes the README's test command: the tests that need one of these files
skip, naming the file and where to get it. CI must not skip them silently, so with FNE_REQUIRE_SHARED_DATA=1
(set by .ci/run) a missing file fails the test instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REQUIRE_ENV = "FNE_REQUIRE_SHARED_DATA"
NB201_TABLE = SHARED_DATA / "nb201" / "nb201_cifar10.csv"
CIFAR10_BATCHES = SHARED_DATA / "cifar-10-batches-py"
SOURCES = {  # what each file is and where to get it (the READMEs beside them give the full provenance)
    NB201_TABLE: "the NAS-Bench-201 CIFAR-10 accuracies: 15,625 rows of index, arch_str, cifar10_test, exported "
                 "from the NATS-Bench API (public copy: v-tao/nats-bench-landscape nats_bench.csv, columns renamed)",
    CIFAR10_BATCHES: "real CIFAR-10 in the official python format (cs.toronto.edu/~kriz/cifar.html, "
                     "cifar-10-python.tar.gz unpacked)",
}


def missing_message(path: Path) -> str:
    """One line: which shared file is missing, what it is and where to get it."""
    return (f"needs {path} ({SOURCES.get(path, 'shared data')}); it is absent: put the project's shared data "
            f"folder beside this checkout as ../shared/data (its README.md describes every file)")


def require(path: Path) -> Path:
    """`path` when it exists; else skip the test naming it (or fail it under FNE_REQUIRE_SHARED_DATA=1, as in CI)."""
    if path.exists():
        return path
    if os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0"):
        pytest.fail(f"{REQUIRE_ENV} is set but the test {missing_message(path)}", pytrace=False)
    pytest.skip(missing_message(path))
