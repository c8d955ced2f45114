#!/usr/bin/env python
"""Evolutionary NAS on CIFAR-10 with training-free scores: the same command and options as `fne search`.

    python NAS_on_cifar10.py --help
    python NAS_on_cifar10.py                                   # DARTS space, ~15 min on a 2-core CPU
    python NAS_on_cifar10.py --space nb201 --ground-truth ../shared/data/nb201/nb201_cifar10.csv
    python NAS_on_cifar10.py --resume runs/darts-seed0-...     # continue a killed run
"""

import sys

from fne.threads import prepare_openmp

if __name__ == "__main__":
    prepare_openmp()  # before anything loads torch: OpenMP reads its wait policy once, then (fne/threads.py)
    from fne.cli import run_command
    from fne.commands.search import search

    sys.exit(run_command(search, prog_name="NAS_on_cifar10.py"))
