"""`python plots/plot_scores.py ...`: the same command as `plot_scores` / `fne plot-scores`."""

import sys

from fne.threads import prepare_openmp

if __name__ == "__main__":
    prepare_openmp()  # before anything loads torch: OpenMP reads its wait policy once, then (fne/threads.py)
    from fne.cli import run_command
    from fne.commands.plot_scores import plot_scores

    sys.exit(run_command(plot_scores, prog_name="plot_scores.py"))
