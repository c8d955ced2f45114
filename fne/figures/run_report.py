"""The figures of `fne report`, one function each: (RunTables, png path) -> None, or SkipFigure."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import AutoLocator, MaxNLocator  # noqa: E402

from fne.evolution.selection import pareto_fronts  # noqa: E402
from fne.figures.cells import render  # noqa: E402
from fne.figures.run_tables import RunTables, SkipFigure, valid_rows  # noqa: E402
from fne.genotopheno.spaces import get_space  # noqa: E402

PALETTE = "viridis"


def _save(fig: plt.Figure, path: Path) -> None:
    for ax in fig.axes:
        # whole generations on numeric axes; categorical ones (strip plots, bars) keep their own ticks
        if ax.get_xlabel() == "generation" and isinstance(ax.xaxis.get_major_locator(), AutoLocator):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _strip(ax: plt.Axes, x: pd.Series, y: pd.Series, color: str, size: float, width: float) -> None:
    """A strip plot with seeded jitter (seaborn's jitter draws from the global RNG, so figures would differ)."""
    jitter = np.random.default_rng(0).uniform(-width, width, len(x))
    ax.scatter(x.to_numpy(dtype=float) + jitter, y, s=size, color=color, zorder=1)
    generations = np.unique(x.to_numpy(dtype=int))
    ax.set_xticks(generations)
    ax.set_xlim(generations.min() - 0.6, generations.max() + 0.6)
    ax.set_xlabel("generation")


def _log_scale(values: pd.Series) -> bool:
    """Log axes for positive scores spanning more than three decades (NTK condition numbers do)."""
    values = values[np.isfinite(values)]
    return bool(len(values) and (values > 0).all() and values.max() / values.min() > 1e3)


def fronts_per_generation(tables: RunTables) -> pd.DataFrame:
    """The Pareto front after every generation g, one row per member, with its generation in `front_of`.

    From populations.csv (the population after each generation, with its front numbers) where the run
    wrote it; otherwise the non-dominated set of everything evaluated up to g.
    """
    populations = tables.optional.get("populations")
    if populations is not None and {"population_generation", "front"} <= set(populations.columns):
        front = valid_rows(populations[populations["front"] == 0], tables.objectives)
        return front.assign(front_of=front["population_generation"].astype(int))
    evaluated = valid_rows(tables.history, tables.objectives)
    parts = []
    for generation in sorted(evaluated["generation"].unique()):
        archive = evaluated[evaluated["generation"] <= generation]
        first = pareto_fronts(archive[list(tables.objectives)].to_numpy(dtype=float))[0]
        parts.append(archive.iloc[first].assign(front_of=int(generation)))
    if not parts:
        raise SkipFigure("no individual was evaluated without error")
    return pd.concat(parts, ignore_index=True)


def pareto_front(tables: RunTables, path: Path) -> None:
    """Pairwise scatter of the objectives: the Pareto front after each generation, coloured by generation."""
    objectives = list(tables.objectives)
    if len(objectives) < 2:
        raise SkipFigure("the run has a single objective, so there is no front to draw")
    fronts = fronts_per_generation(tables)
    evaluated = valid_rows(tables.history, tables.objectives)
    pairs = [(a, b) for i, a in enumerate(objectives) for b in objectives[i + 1:]]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs, strict=True):
        ax.scatter(evaluated[a], evaluated[b], s=10, c="#d0d0d0", label="all evaluated", zorder=1)
        # Elitism keeps front members across generations: earlier fronts are drawn first and larger, so a
        # point that stayed on the front shows as concentric rings.
        sns.scatterplot(data=fronts, x=a, y=b, hue="front_of", size="front_of", sizes=(90, 14), palette=PALETTE,
                        ax=ax, zorder=2, legend=ax is axes[0][-1], edgecolor="white", linewidth=0.4)
        ax.set_xscale("log" if _log_scale(evaluated[a]) else "linear")
        ax.set_yscale("log" if _log_scale(evaluated[b]) else "linear")
        ax.set_title(f"{a} vs {b}")
    legend = axes[0][-1].get_legend()
    if legend is not None:
        legend.set_title("front after\ngeneration")
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1.0))
    _save(fig, path)


def scores_per_generation(tables: RunTables, path: Path) -> None:
    """Best and median of each objective among each generation's evaluated individuals, and best so far."""
    evaluated = valid_rows(tables.history, tables.objectives)
    if evaluated.empty:
        raise SkipFigure("no individual was evaluated without error")
    grouped = evaluated.groupby("generation")
    fig, axes = plt.subplots(1, len(tables.objectives), figsize=(4.6 * len(tables.objectives), 3.8), squeeze=False)
    for ax, name in zip(axes[0], tables.objectives, strict=True):
        best, median = grouped[name].min(), grouped[name].median()
        ax.plot(best.index, best.values, "o-", label="best of generation")
        ax.plot(median.index, median.values, "s--", label="median of generation")
        ax.plot(best.index, best.cummin().values, "k:", label="best so far")
        ax.set_yscale("log" if _log_scale(evaluated[name]) else "linear")
        ax.set_xlabel("generation")
        ax.set_title(f"{name} (lower is better)")
    axes[0][0].legend(fontsize=8)
    _save(fig, path)


def strategy_drift(tables: RunTables, path: Path) -> None:
    """Mean and interquartile band of every self-adapted strategy parameter per generation."""
    columns = [c for c in tables.history.columns if c.startswith("strategy_")
               and pd.api.types.is_numeric_dtype(tables.history[c]) and tables.history[c].notna().any()]
    if not columns:
        raise SkipFigure("history.csv has no strategy_ columns")
    probabilities = [c for c in columns if c.startswith("strategy_p_")]
    others = [c for c in columns if c not in probabilities]
    groups = [g for g in (probabilities, others) if g]
    fig, axes = plt.subplots(1, len(groups), figsize=(6.0 * len(groups), 3.9), squeeze=False)
    grouped = tables.history.groupby("generation")
    for ax, group in zip(axes[0], groups, strict=True):
        for column in group:
            mean, low, high = grouped[column].mean(), grouped[column].quantile(0.25), grouped[column].quantile(0.75)
            line, = ax.plot(mean.index, mean.values, marker=".", label=column.removeprefix("strategy_"))
            ax.fill_between(mean.index, low.values, high.values, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("generation")
        ax.set_title("mutation probabilities" if group is probabilities else "other strategy parameters")
        ax.legend(fontsize=7)
    _save(fig, path)


def _id_list(value) -> list[int]:
    """Candidate ids as written by the search ("3;7;9") or as a JSON list."""
    text = str(value).strip()
    if text.startswith("["):
        return [int(v) for v in json.loads(text)]
    return [int(v) for v in text.split(";") if v.strip()]


def _column(table: pd.DataFrame, *names: str) -> str:
    for name in names:
        if name in table.columns:
            return name
    raise SkipFigure(f"tournaments.csv lacks a column named {' or '.join(names)}")


def tournament_outcomes(tables: RunTables) -> pd.DataFrame:
    """One row per tournament: generation, size, the winner's softmax weight, whether it was the rank favourite."""
    table = tables.table("tournaments")
    candidates_col = _column(table, "candidates", "candidate_ids", "ids")
    alphas_col = _column(table, "alphas", "alpha")
    winner_col = _column(table, "winner", "winner_id")
    scores = tables.history.drop_duplicates("id", keep="last").set_index("id")
    weights_col = "weights" if "weights" in table.columns else None
    rows = []
    for record in table.to_dict("records"):
        ids = _id_list(record[candidates_col])
        if weights_col is not None:
            weights = np.asarray(json.loads(record[weights_col]), dtype=float)
        else:  # softmax of the final alphas, as the tournament computes it
            alphas = np.asarray(json.loads(record[alphas_col]), dtype=float)
            weights = np.exp(alphas - alphas.max()) / np.exp(alphas - alphas.max()).sum()
        winner = int(record[winner_col])
        favourite = np.nan
        if all(i in scores.index for i in ids):
            ranks = scores.loc[ids, list(tables.ranked)].rank(method="average").sum(axis=1)
            favourite = float(ranks.idxmin() == winner)
        rows.append({"generation": int(record["generation"]), "size": len(ids),
                     "winner_weight": float(weights[ids.index(winner)]) if winner in ids else float(weights.max()),
                     "winner_was_rank_favourite": favourite})
    return pd.DataFrame(rows)


def tournaments(tables: RunTables, path: Path) -> None:
    """Softmax weight of each tournament's winner (vs the uniform 1/k) and agreement with the scores."""
    outcomes = tournament_outcomes(tables)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.9))
    _strip(axes[0], outcomes["generation"], outcomes["winner_weight"], color="C0", size=22, width=0.15)
    uniform = 1.0 / outcomes["size"].median()
    axes[0].axhline(uniform, color="grey", ls="--", label=f"uniform 1/k = {uniform:.2f}")
    axes[0].set_title("winner's softmax(alpha) weight per tournament")
    axes[0].legend(fontsize=8)
    agreement = outcomes.groupby("generation")["winner_was_rank_favourite"].mean()
    axes[1].bar(agreement.index.astype(str), 100 * agreement.values, color="C2")
    axes[1].set_ylim(0, 100)
    axes[1].set_xlabel("generation")
    axes[1].set_ylabel("% of tournaments")
    axes[1].set_title("winner = best rank-combined candidate")
    _save(fig, path)


def wall_time(tables: RunTables, path: Path) -> None:
    """Seconds per generation, split into scoring, tournaments and the rest (selection, bookkeeping)."""
    timings = tables.table("timings")
    if "seconds" not in timings.columns:
        raise SkipFigure("timings.csv has no seconds column")
    generation = timings["generation"].astype(int).astype(str)
    zero = 0.0 * timings["seconds"]
    parts = {"scoring (heuristics)": timings["evaluation_seconds"].fillna(0.0) if "evaluation_seconds" in timings
             else zero,
             "tournaments": timings["tournament_seconds"].fillna(0.0) if "tournament_seconds" in timings else zero}
    parts["selection, bookkeeping"] = (timings["seconds"] - sum(parts.values())).clip(lower=0.0)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(timings) + 2), 3.8))
    bottom = zero.to_numpy()
    for colour, (label, seconds) in enumerate(parts.items()):
        if seconds.sum() > 0:
            ax.bar(generation, seconds, bottom=bottom, label=label, color=f"C{colour}")
            bottom = bottom + seconds.to_numpy()
    ax.set_xlabel("generation")
    ax.set_ylabel("seconds")
    ax.set_title(f"wall time per generation (total {timings['seconds'].sum():.0f} s)")
    ax.legend(fontsize=8)
    _save(fig, path)


def true_accuracy(tables: RunTables, path: Path) -> None:
    """Benchmark accuracy (looked up after the fact, never used in the search) per generation."""
    history = tables.history
    if "true_accuracy" not in history.columns or history["true_accuracy"].notna().sum() == 0:
        raise SkipFigure("no true_accuracy values (run the search with --ground-truth on NB201)")
    known = history[history["true_accuracy"].notna()]
    grouped = known.groupby("generation")["true_accuracy"]
    fronts = fronts_per_generation(tables)
    front_accuracy = fronts.groupby("front_of")["true_accuracy"].max()  # best cell on each generation's front
    fig, ax = plt.subplots(figsize=(6.5, 3.9))
    _strip(ax, known["generation"], known["true_accuracy"], color="#bbbbbb", size=8, width=0.2)
    ax.plot(grouped.max().index, grouped.max().values, "o-", label="best of generation")
    ax.plot(grouped.median().index, grouped.median().values, "s--", label="median of generation")
    ax.plot(front_accuracy.index, front_accuracy.values, "k:", label="best on the Pareto front")
    ax.set_xlabel("generation")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("true accuracy of evaluated cells")
    ax.legend(fontsize=8)
    _save(fig, path)


def draw_best_cells(space: str, genotype: str, output: Path) -> list[str]:
    """Drawings of the best genotype's cells (its space's `cell_graphs`: DARTS normal and reduction); file names."""
    files = []
    for graph in get_space(space).cell_graphs(genotype):
        files.append(f"best_{graph.stem}.png")
        render(graph.nodes, graph.edges, f"best {graph.title}", output / files[-1], graph.outputs)
    return files


# (title, file, caption, function): the page shows them in this order.
FIGURES = (
    ("Pareto front per generation", "pareto_front.png",
     "Pairwise scatter of the objectives (all minimised). Grey: every evaluated cell; coloured: the Pareto front "
     "(non-dominated members) of the population after each generation; rings mark cells that stayed on it.",
     pareto_front),
    ("Scores per generation", "scores_per_generation.png",
     "Best and median of each objective among the cells evaluated in each generation; dotted: best so far.",
     scores_per_generation),
    ("Strategy-parameter drift", "strategy_drift.png",
     "Self-adapted mutation settings of the cells born in each generation: mean line, interquartile band.",
     strategy_drift),
    ("Tournament outcomes", "tournaments.png",
     "Left: how decisively each DARTS tournament picked its winner. Right: how often the winner was also the "
     "candidate with the best rank-combined training-free score.", tournaments),
    ("Wall time per generation", "wall_time.png",
     "Seconds per generation from timings.csv: scoring, DARTS tournaments and the rest.", wall_time),
    ("True accuracy per generation", "true_accuracy.png",
     "NAS-Bench-201 200-epoch test accuracy of the evaluated cells, looked up for the report only.", true_accuracy),
)
