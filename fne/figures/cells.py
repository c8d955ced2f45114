"""Drawings of cells as DAGs: matplotlib always, graphviz `dot` when it is installed.

The graphs come from the search spaces (`SearchSpace.cell_graphs`). A DARTS cell is drawn as DARTS's
`visualize.py` draws it: inputs c_{k-2} and c_{k-1} on the left, intermediate nodes 0..B-1, each fed by
two labelled op edges, and their concatenation c_{k} on the right. An NB201 cell is its four nodes in a
row with the six op edges between them; `none` edges are dashed, since they cut the connection.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from fne.genotopheno.search_space import GraphEdge

log = logging.getLogger(__name__)

INPUT_COLOUR, NODE_COLOUR, OUTPUT_COLOUR = "#9ecae1", "#fdd0a2", "#c7e9c0"


def _node_colour(name: str, output_nodes: Sequence[str]) -> str:
    if name in output_nodes:
        return OUTPUT_COLOUR
    return INPUT_COLOUR if name.startswith("c_{k-") else NODE_COLOUR


def draw_graph(nodes: Sequence[str], edges: Sequence[GraphEdge], title: str, path: str | Path,
               output_nodes: Sequence[str] = ("c_{k}",)) -> Path:
    """Draw a cell as an arc diagram (nodes in a row, op edges as labelled arcs above) and save a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    # Nodes in topological order on a line: every op edge points right and bows upwards, so no edge
    # crosses a node; the unlabelled concatenation edges bow downwards.
    x = {name: 1.6 * i for i, name in enumerate(nodes)}
    fig, ax = plt.subplots(figsize=(1.2 + 1.45 * len(nodes), 3.6))
    seen: dict[tuple[str, str], int] = {}
    top, bottom = 0.5, -0.5
    for source, target, op in edges:
        x1, x2 = x[source], x[target]
        repeat = seen.get((source, target), 0)
        seen[(source, target)] = repeat + 1
        rad = (-0.55 - 0.3 * repeat) if op else 0.35
        arrow = FancyArrowPatch((x1, 0.0), (x2, 0.0), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>",
                                mutation_scale=11, shrinkA=15, shrinkB=15, lw=1.2, zorder=1,
                                color="#333333" if op and op != "none" else "#9a9a9a",
                                linestyle="--" if op == "none" else "-")
        ax.add_patch(arrow)
        # apex of matplotlib's arc3 quadratic Bezier: half the control point's offset (equal aspect below)
        apex = -0.5 * rad * (x2 - x1)
        top, bottom = max(top, apex), min(bottom, apex)
        if op:
            ax.text((x1 + x2) / 2, apex, op, fontsize=7, ha="center", va="center", zorder=3,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.9})
    for name in nodes:
        ax.scatter([x[name]], [0.0], s=800, c=_node_colour(name, output_nodes), edgecolors="#333333", zorder=2)
        ax.text(x[name], 0.0, f"${name}$" if "{" in name else name, ha="center", va="center", fontsize=9, zorder=4)
    ax.set_aspect("equal")
    ax.set_xlim(-0.8, x[nodes[-1]] + 0.8)
    ax.set_ylim(bottom - 0.4, top + 0.5)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def graph_dot(nodes: Sequence[str], edges: Sequence[GraphEdge], title: str,
              output_nodes: Sequence[str] = ("c_{k}",)) -> str:
    """Graphviz DOT source of a cell graph, left to right as in DARTS's visualize.py."""
    lines = ["digraph cell {", "  rankdir=LR;", f'  label="{title}"; labelloc=t;',
             '  node [style=filled, shape=rect, fontname="Helvetica"];', '  edge [fontname="Helvetica", fontsize=10];']
    for name in nodes:
        lines.append(f'  "{name}" [fillcolor="{_node_colour(name, output_nodes)}"];')
    for source, target, op in edges:
        style = ', style=dashed, color=gray' if op == "none" else ""
        label = f'label="{op}"' if op else 'color=gray'
        lines.append(f'  "{source}" -> "{target}" [{label}{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(nodes: Sequence[str], edges: Sequence[GraphEdge], title: str, path: str | Path,
           output_nodes: Sequence[str] = ("c_{k}",), use_graphviz: bool | None = None) -> Path:
    """PNG of a cell graph: graphviz where `dot` is installed (use_graphviz None), matplotlib otherwise."""
    path = Path(path)
    dot = shutil.which("dot") if use_graphviz in (None, True) else None
    if dot:
        try:
            subprocess.run([dot, "-Tpng", "-o", str(path)], input=graph_dot(nodes, edges, title, output_nodes).encode(),
                           check=True, capture_output=True, timeout=60)
            return path
        except (subprocess.SubprocessError, OSError) as error:
            log.warning("graphviz failed (%s); drawing %s with matplotlib", error, path)
    return draw_graph(nodes, edges, title, path, output_nodes)
