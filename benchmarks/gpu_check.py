#!/usr/bin/env python
"""The prepared GPU check (issue 12): one command, about 8 minutes on one H100, writing OUT/README.md and CSVs.

    python benchmarks/gpu_check.py --out report/gpu                 # on a machine with a CUDA GPU
    python benchmarks/gpu_check.py --quick --out /tmp/gpu-quick     # every section tiny on the CPU (CI)

Sections (benchmarks/gpu/, one module each):
  1 correctness   tests/test_cuda.py (`pytest -m cuda`): scores on CUDA = CPU, chunked NTK, AMP, export/load
  2 speed         ms per architecture of the default and of every registered score, ratio to fwd+bwd, peak memory
  3 busy          architectures/s in process vs several dask workers sharing the GPU
  4 space         all 15,625 NB201 cells through the plot_scores study's resumable cache, within --budget-minutes
  5 training      images/s (fp32, AMP, channels_last), the 600-epoch estimate, a seeded 3-cell comparison

OUT/README.md is rewritten after every section, so a run cut short still leaves what it measured; a
section that fails is recorded and the others run. Exit code 1 if any section failed. See docs/gpu.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path

from fne.threads import apply_thread_rule

SECTIONS = ("correctness", "speed", "busy", "space", "training")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line of the check."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", type=Path, default=Path("report/gpu"), help="output folder (default report/gpu)")
    parser.add_argument("--quick", action="store_true", help="every section tiny on the CPU, seconds each")
    parser.add_argument("--device", default=None, help="cuda, cuda:N or cpu (default: cuda; cpu with --quick)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--data-dir", default=None,
                        help="cifar-10-batches-py folder (default: ../shared/data's; --quick: the shipped sample)")
    parser.add_argument("--ground-truth", type=Path, default=SHARED / "nb201" / "nb201_cifar10.csv",
                        help="NB201 CSV with arch_str,cifar10_test (section 4)")
    parser.add_argument("--budget-minutes", type=float, default=1.5, help="time for the whole-space section")
    parser.add_argument("--space-cache", type=Path, default=None,
                        help="score cache of section 4 (default OUT/space/score_cache.jsonl); reruns continue it")
    parser.add_argument("--train-minutes", type=float, default=3.0, help="time for the 3-cell training comparison")
    parser.add_argument("--cell", default=None, help="DARTS genotype (or published name) to compare in section 5")
    parser.add_argument("--run-dir", type=Path, default=None, help="compare this search run's best cell instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: FNE_THREADS, else usable cores)")
    return parser.parse_args(argv)


def resolve(args: argparse.Namespace):
    """The Check of these options (imports torch: call after the threading rule)."""
    import torch
    from gpu.common import FULL, QUICK, Check

    device = args.device or ("cpu" if args.quick or not torch.cuda.is_available() else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {device} but CUDA is not available; use --quick (or --device cpu)")
    if not device.startswith("cuda") and not args.quick:
        logging.warning("no GPU: running the full-size check on %s (slow); --quick runs it tiny", device)
    shared_images = SHARED / "cifar-10-batches-py"
    data_dir = args.data_dir or (str(shared_images) if shared_images.is_dir() and not args.quick else None)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"error: --sections {args.sections}: unknown {sorted(unknown)}; known: {SECTIONS}")
    return Check(out=args.out, device=device, quick=args.quick, seed=args.seed, data_dir=data_dir,
                 ground_truth=args.ground_truth, budget_minutes=args.budget_minutes, train_minutes=args.train_minutes,
                 cell=args.cell, run_dir=args.run_dir, space_cache=args.space_cache,
                 sizes=QUICK if args.quick else FULL)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections in order, rewriting OUT/README.md after each; 1 if any failed."""
    args = parse_args(argv)
    apply_thread_rule(args.threads)  # before torch loads (fne/threads.py)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from gpu import busy, correctness, space, speed, train_check
    from gpu.common import Section, environment
    from gpu.report import write_readme

    check = resolve(args)
    check.out.mkdir(parents=True, exist_ok=True)
    modules = {"correctness": correctness, "speed": speed, "busy": busy, "space": space, "training": train_check}
    info = environment(check)
    started = time.perf_counter()
    done: list[Section] = []
    for name in args.sections.split(","):
        began = time.perf_counter()
        print(f"[{time.perf_counter() - started:6.0f} s] section {name} ...", flush=True)
        try:
            section = modules[name].run(check)
        except Exception as error:  # noqa: BLE001 - one failing section must not lose the others' measurements
            section = Section(getattr(modules[name], "TITLE", name), status=f"FAILED: {type(error).__name__}",
                              markdown=f"```\n{''.join(traceback.format_exception(error))[-3000:]}\n```")
        section.seconds = time.perf_counter() - began
        done.append(section)
        write_readme(check, info, done, time.perf_counter() - started, finished=False)
        print(f"[{time.perf_counter() - started:6.0f} s] section {name}: {section.status}", flush=True)
    page = write_readme(check, info, done, time.perf_counter() - started, finished=True)
    print(f"wrote {page} ({(time.perf_counter() - started) / 60:.1f} min)")
    return 0 if all(s.status in ("ok", "skipped") for s in done) else 1


if __name__ == "__main__":
    sys.exit(main())
