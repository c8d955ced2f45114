"""`python plots/plot_scores.py ...`: the same command as `plot_scores` / `fne plot-scores`."""

import sys

from fne.cli import run_command
from fne.commands.plot_scores import plot_scores

if __name__ == "__main__":
    sys.exit(run_command(plot_scores, prog_name="plot_scores.py"))
