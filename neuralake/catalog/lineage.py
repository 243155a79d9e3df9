"""Lineage: which tables a table is built from, drawn as a left-to-right SVG.

Tables declare ``upstream=["sessions", "other_db.devices"]``. The graph is laid out
in Python (columns by longest path from a source, rows in name order) and the site
draws it as inline SVG: no JavaScript library, nothing fetched at view time. An
upstream name that is not in the catalog (a Kafka topic, an external system) is drawn
as an external node.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from neuralake.catalog.errors import CatalogError

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 30, 60, 14, 10


@dataclass(frozen=True)
class LineageGraph:
    """Nodes are ``db.table`` ids (or external names); an edge goes upstream -> table."""

    nodes: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]

    @classmethod
    def build(cls, nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> LineageGraph:
        edges = tuple(sorted(set(edges)))
        names = set(nodes) | {n for e in edges for n in e}
        return cls(tuple(sorted(names)), edges)

    def _walk(self, start: str, forward: bool) -> set[str]:
        step = defaultdict(list)
        for up, down in self.edges:
            if forward:
                step[up].append(down)
            else:
                step[down].append(up)
        seen, todo = set(), [start]
        while todo:
            for nxt in step[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    def around(self, node: str) -> LineageGraph:
        """The node with all its ancestors and descendants."""
        keep = {node} | self._walk(node, forward=False) | self._walk(node, forward=True)
        return LineageGraph.build(keep, ((a, b) for a, b in self.edges if a in keep and b in keep))


@dataclass(frozen=True)
class Box:
    id: str
    x: int
    y: int
    w: int
    h: int
    current: bool
    external: bool


@dataclass(frozen=True)
class Drawing:
    """Everything the SVG template needs: sizes, boxes and edge paths."""

    width: int
    height: int
    boxes: tuple[Box, ...]
    paths: tuple[str, ...]


def layers(graph: LineageGraph) -> dict[str, int]:
    """Column of each node: the length of the longest path reaching it from a source."""
    ups = defaultdict(list)
    for up, down in graph.edges:
        ups[down].append(up)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(node: str) -> int:
        if node in depth:
            return depth[node]
        if node in visiting:
            raise CatalogError(f"lineage has a cycle through {node!r}: fix its upstream list")
        visiting.add(node)
        depth[node] = 1 + max((visit(u) for u in ups[node]), default=-1)
        visiting.discard(node)
        return depth[node]

    for node in graph.nodes:
        visit(node)
    return depth


def draw(graph: LineageGraph, current: str | None, known: set[str]) -> Drawing:
    """Place every node of ``graph``; ``known`` are catalog tables, the rest are external."""
    depth = layers(graph)
    columns: dict[int, list[str]] = defaultdict(list)
    for node in graph.nodes:
        columns[depth[node]].append(node)
    boxes = {}
    for col, names in columns.items():
        for row, name in enumerate(sorted(names)):
            x = PAD + col * (BOX_W + GAP_X)
            y = PAD + row * (BOX_H + GAP_Y)
            boxes[name] = Box(name, x, y, BOX_W, BOX_H, name == current, name not in known)
    paths = []
    for up, down in graph.edges:
        a, b = boxes[up], boxes[down]
        x1, y1, x2, y2 = a.x + a.w, a.y + a.h // 2, b.x, b.y + b.h // 2
        mid = (x1 + x2) // 2
        paths.append(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}")
    width = PAD * 2 + (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X
    tallest = max((len(v) for v in columns.values()), default=1)
    height = PAD * 2 + tallest * (BOX_H + GAP_Y) - GAP_Y
    return Drawing(width, height, tuple(boxes.values()), tuple(paths))
