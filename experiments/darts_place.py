"""Where a DARTS run's pick (and DARTS_V2) falls among the 600 NB301 cells, ranked by the DARTS defaults' aggregate.

    python experiments/darts_place.py experiments/results/darts_default/run \
        --table report/heuristics/darts/defaults/scores.csv

Scores the run's best cell and DARTS_V2 at the table's layout (`16.32.64|2.2.2`, NB301's 8 cells) with
`fne.score` (the study's settings: a table cell scored this way gives its cached scores, which the script
checks on the table's first row; within 1e-5, since part of the cache was computed on another machine's CPU,
where float32 differs at about 1e-7), ranks each with the 600 by the log-rank sum of the scores, and
prints its place, its parameters at the search widths and as DARTS's evaluation network (C=36, 20 cells).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import fne
from fne.genotopheno.genotype import published
from fne.genotopheno.network import count_parameters
from fne.genotopheno.spaces import get_space
from fne.scoring.aggregation import az_nas_log_rank
from fne.scoring.fitness import space_heuristics

TABLE_SHAPE = "16.32.64|2.2.2"


def main() -> None:
    """Print each cell's place among the table's cells and its sizes."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--table", type=Path, default=Path("report/heuristics/darts/defaults/scores.csv"))
    args = parser.parse_args()
    space, table = get_space("darts"), pd.read_csv(args.table)
    names = list(space_heuristics(space))
    best = json.loads((args.run / "best.json").read_text())["genotype"]
    cells = {"the run's pick": best, "DARTS_V2": str(published("DARTS_V2"))}
    at_table = ["|".join(g.split("|")[:2]) + "|" + TABLE_SHAPE for g in cells.values()]
    scored = fne.score([*at_table, table["canonical"][0]], space="darts", heuristics=tuple(names), device="cpu")
    check = scored.iloc[-1][names].to_numpy(float)
    assert np.allclose(check, table.loc[0, names].to_numpy(float), rtol=1e-5), "settings differ from the table's"
    for (label, genotype), (_, row) in zip(cells.items(), scored.iloc[:-1].iterrows(), strict=True):
        both = np.vstack([table[names].to_numpy(float), row[names].to_numpy(float)])
        aggregate = az_nas_log_rank(both)
        place = int((aggregate[:-1] < aggregate[-1]).sum()) + 1
        ahead = 100.0 * float((aggregate[:-1] > aggregate[-1]).mean())
        params = count_parameters(space.build(genotype, seed=0))
        evaluation = count_parameters(space.evaluation_network(genotype, C=36, layers=20))
        print(f"{label}: {genotype}\n  place {place} of {len(table) + 1} by the log-rank sum of {', '.join(names)} "
              f"(ahead of {ahead:.1f}% of the {len(table)}); {params:,} parameters at its widths, "
              f"{evaluation:,} at C=36, 20 cells; scores {row[names].round(3).to_dict()}")
    top = table.iloc[np.argsort(az_nas_log_rank(table[names].to_numpy(float)), kind="stable")[:10]]
    print(f"the table's 10 best by the aggregate: accuracy {top['val_accuracy'].round(2).tolist()} "
          f"(mean {top['val_accuracy'].mean():.2f}; table median {table['val_accuracy'].median():.2f}, "
          f"best {table['val_accuracy'].max():.2f})")


if __name__ == "__main__":
    main()
