"""Seaborn figures of the heuristic validation: each score against true accuracy, tau and rho in the title."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

LOG_SCALE = frozenset({"ntk", "grad_corr", "params", "flops"})  # positive, spread over orders of magnitude
LABELS = {
    "ntk": "NTK condition number (TE-NAS), lower = better",
    "linear_regions": "-log|K_H| (NASWOT), lower = better",
    "grad_corr": "Jacobian correlation score (Mellor v1), lower = better",
    "params": "#params",
    "flops": "FLOPs",
    "rank_combined": "sum of heuristic ranks, lower = better",
}


def _axes_scatter(ax, data: pd.DataFrame, name: str, accuracy_column: str, row: pd.Series) -> None:
    import seaborn as sns

    values = data[name].astype(float)
    finite = np.isfinite(values)
    sns.scatterplot(x=values[finite], y=data.loc[finite, accuracy_column], s=10, alpha=0.5, linewidth=0, ax=ax)
    if name in LOG_SCALE and (values[finite] > 0).all():
        from matplotlib.ticker import NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on short decades
    dropped = int((~finite).sum())
    ax.set_xlabel(LABELS.get(name, name) + (f"  [{dropped} at +inf not shown]" if dropped else ""), fontsize=8)
    ax.set_ylabel(f"{accuracy_column} (%)")
    ax.set_title(f"{name}: Kendall tau {row.kendall_tau:+.3f}, Spearman rho {row.spearman_rho:+.3f}", fontsize=9)


def write_figures(scores: pd.DataFrame, correlations: pd.DataFrame, accuracy_column: str, names: Sequence[str],
                  out: Path) -> list[Path]:
    """One scatter PNG per score and one overview grid; returns the written paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    table = correlations.set_index("score")
    files = []
    for name in names:
        fig, ax = plt.subplots(figsize=(5, 4))
        _axes_scatter(ax, scores, name, accuracy_column, table.loc[name])
        fig.tight_layout()
        path = out / f"scatter_{name}.png"
        fig.savefig(path, dpi=130)
        plt.close(fig)
        files.append(path)
    columns = 3
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        _axes_scatter(ax, scores, name, accuracy_column, table.loc[name])
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"Training-free scores vs {accuracy_column} ({len(scores)} architectures)")
    fig.tight_layout()
    path = out / "scores_vs_accuracy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    files.append(path)
    bars = correlations.melt(id_vars="score", value_vars=["kendall_tau", "spearman_rho"], var_name="statistic")
    fig, ax = plt.subplots(figsize=(7, 0.4 * len(correlations) + 1.5))
    sns.barplot(data=bars, y="score", x="value", hue="statistic", ax=ax)
    ax.set_xlabel("rank correlation with accuracy (higher = better predictor)")
    ax.set_ylabel("")
    fig.tight_layout()
    path = out / "correlations.png"
    fig.savefig(path, dpi=130)
    plt.close(fig)
    files.append(path)
    return files
