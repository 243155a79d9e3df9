"""The pipeline's lineage: the catalog's graph plus the services around the tables.

The catalog knows which table is built from which (``upstream=[...]``), including
external names such as a Kafka topic. It does not know who produces into the topic, nor
which tables an API serves. :func:`pipeline_graph` adds both: the edges a lesson names
(``("producer", "kafka:l08_signals")``) and one edge from every table the export
marks as served by ROAPI. :func:`plot` draws it with the catalog's own layout
(:func:`neuralake.catalog.lineage.draw`: columns by longest path from a source) in
matplotlib, so a notebook shows it inline as an image; the site draws the same layout as
SVG.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from matplotlib.axes import Axes
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from matplotlib.path import Path

from neuralake.catalog.lineage import LineageGraph, draw

SERVING = "ROAPI (hot path)"
TABLE_COLOR, EXTERNAL_COLOR, EDGE_COLOR = "#2f5fd0", "#8a93a6", "#8a93a6"


def pipeline_graph(
    export: dict[str, Any],
    extra_edges: Iterable[tuple[str, str]] = (),
    serving: str = SERVING,
    only_served: Collection[str] | None = None,
) -> tuple[LineageGraph, set[str]]:
    """The export's lineage + ``extra_edges`` + ``table -> serving`` for every served table
    (or only for the table ids in ``only_served``: a drawing with fewer crossing edges).

    Returns the graph and the ids of the catalog's own tables (the rest are external).
    """
    known = {t["id"] for t in export["tables"]}
    edges = [tuple(e) for e in export["lineage"]["edges"]]
    edges += [
        (t["id"], serving)
        for t in export["tables"]
        if t["roapi"]["served"] and (only_served is None or t["id"] in only_served)
    ]
    edges += list(extra_edges)
    return LineageGraph.build(known, edges), known


def plot(graph: LineageGraph, known: set[str], ax: Axes) -> Axes:
    """Draw ``graph`` on ``ax``: catalog tables in solid boxes, external nodes dashed."""
    drawing = draw(graph, current=None, known=known)
    for points in drawing.curves:  # the same cubic curves as the site's SVG paths
        curve = Path(points, [Path.MOVETO] + [Path.CURVE4] * (len(points) - 1))
        ax.add_patch(FancyArrowPatch(path=curve, arrowstyle="-|>", mutation_scale=10,
                                     color=EDGE_COLOR, linewidth=1.2))  # fmt: skip
    for box in drawing.boxes:
        color = EXTERNAL_COLOR if box.external else TABLE_COLOR
        ax.add_patch(
            FancyBboxPatch(
                (box.x, box.y), box.w, box.h, boxstyle="round,pad=0,rounding_size=5",
                facecolor="white", edgecolor=color, linewidth=1.3,
                linestyle="--" if box.external else "-",
            )
        )  # fmt: skip
        label = box.id if len(box.id) <= 28 else box.id[:27] + "…"
        ax.text(box.x + 6, box.y + box.h / 2, label, va="center", fontsize=7.5, color="#1d2433")
    ax.set_xlim(0, drawing.width)
    ax.set_ylim(drawing.height, 0)  # SVG coordinates: y grows downwards
    ax.set_axis_off()
    return ax
