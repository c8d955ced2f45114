"""fne.evolution is the algorithm alone: importing any of its modules pulls in no run machinery or training.

Each module is imported in a fresh interpreter in which dask, distributed, click and tqdm cannot be imported
(torch itself imports tqdm when it is there, and falls back without it), so a module of the package that
needs one of them fails to import; fne.training and fne.run must not be loaded either.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import fne.evolution

MODULES = sorted(f"fne.evolution.{info.name}" for info in pkgutil.iter_modules(fne.evolution.__path__))
BLOCKED = ("dask", "distributed", "click", "tqdm")
NOT_LOADED = ("fne.training", "fne.run")

PROBE = """
import importlib.abc, json, sys
BLOCKED = {blocked!r}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked")
        return None

sys.meta_path.insert(0, Block())
import {module}
print(json.dumps(sorted(sys.modules)))
"""


def test_the_package_has_the_algorithm_modules():
    assert {"fne.evolution.operators", "fne.evolution.selection", "fne.evolution.survival", "fne.evolution.loop",
            "fne.evolution.individual", "fne.evolution.budget", "fne.evolution.seeds"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_no_run_machinery(module):
    code = PROBE.format(blocked=BLOCKED, module=module)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, f"{module} needs a blocked package: {out.stderr.strip().splitlines()[-1:]}"
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    unwanted = [name for name in loaded if name.split(".")[0] in BLOCKED
                or any(name == prefix or name.startswith(prefix + ".") for prefix in NOT_LOADED)]
    assert unwanted == [], f"{module} loads {unwanted}"


def test_the_probe_catches_a_module_that_needs_a_blocked_package():
    out = subprocess.run([sys.executable, "-c", PROBE.format(blocked=BLOCKED, module="fne.run.progress")],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "tqdm is blocked" in out.stderr
