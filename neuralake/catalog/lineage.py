"""Lineage: which tables a table is built from, drawn as a left-to-right SVG.

Tables declare ``upstream=["sessions", "other_db.devices"]``. The graph is laid out
in Python (columns by longest path from a source, rows following their upstreams) and the site
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
LANE = 16  # room above the boxes for edges that skip a column


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
    paths: tuple[str, ...]  # SVG, one per edge, in the graph's edge order
    curves: tuple[tuple[tuple[float, float], ...], ...] = ()  # the same, as points


def layers(graph: LineageGraph) -> dict[str, int]:
    """Column of each node: the length of the longest path reaching it from a source.

    A source (a dimension table, a producer) then moves right, next to the first node it
    feeds: a dimension table joined into gold sits beside silver, not at the far left with
    its edge drawn across every column in between.
    """
    ups, downs = defaultdict(list), defaultdict(list)
    for up, down in graph.edges:
        ups[down].append(up)
        downs[up].append(down)
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
    for node in graph.nodes:
        if not ups[node] and downs[node]:
            depth[node] = min(depth[d] for d in downs[node]) - 1
    return depth


Point = tuple[float, float]


def _rows(graph: LineageGraph, depth: dict[str, int]) -> dict[str, int]:
    """Row of each node in its column: fed nodes in the order of their upstreams' rows
    (so a chain stays on one line), then sources by name."""
    ups = defaultdict(list)
    for up, down in graph.edges:
        ups[down].append(up)
    row: dict[str, int] = {}
    for col in sorted(set(depth.values())):
        order = []
        for name in (n for n in graph.nodes if depth[n] == col):
            above = [row[u] for u in ups[name] if u in row]
            key = (0, sum(above) / len(above), name) if above else (1, 0.0, name)
            order.append((key, name))
        for i, (_, name) in enumerate(sorted(order)):
            row[name] = i
    return row


def _curve(a: Box, b: Box, lane: float) -> tuple[Point, ...]:
    """Control points of the edge a -> b, cubic segments after the first point.

    Next-column edges are one S-curve. A longer edge would cross the boxes in between,
    so it climbs to a lane above every box in the gap after ``a``, runs along it and
    comes down in the gap before ``b``.
    """
    x1, y1, x2, y2 = a.x + a.w, a.y + a.h / 2, b.x, b.y + b.h / 2
    if x2 - x1 <= GAP_X:
        mid = (x1 + x2) / 2
        return ((x1, y1), (mid, y1), (mid, y2), (x2, y2))
    g = GAP_X / 2
    return (
        (x1, y1), (x1 + g, y1), (x1 + g, lane), (x1 + GAP_X, lane),
        (x1 + GAP_X, lane), (x2 - GAP_X, lane), (x2 - GAP_X, lane),
        (x2 - g, lane), (x2 - g, y2), (x2, y2),
    )  # fmt: skip


def svg_path(curve: tuple[Point, ...]) -> str:
    """An SVG path (``M`` then ``C`` per cubic segment) through ``curve``'s points."""
    (x, y), rest = curve[0], curve[1:]
    segments = [rest[i : i + 3] for i in range(0, len(rest), 3)]
    cubic = " ".join("C" + " ".join(f"{px:g},{py:g}" for px, py in seg) for seg in segments)
    return f"M{x:g},{y:g} {cubic}"


def draw(graph: LineageGraph, current: str | None, known: set[str]) -> Drawing:
    """Place every node of ``graph``; ``known`` are catalog tables, the rest are external."""
    depth = layers(graph)
    row = _rows(graph, depth)
    long_edges = any(depth[b] - depth[a] > 1 for a, b in graph.edges)
    top = PAD + (LANE if long_edges else 0)
    boxes = {}
    for name in graph.nodes:
        x = PAD + depth[name] * (BOX_W + GAP_X)
        y = top + row[name] * (BOX_H + GAP_Y)
        boxes[name] = Box(name, x, y, BOX_W, BOX_H, name == current, name not in known)
    curves = tuple(_curve(boxes[a], boxes[b], lane=PAD + LANE / 2) for a, b in graph.edges)
    columns = max(depth.values(), default=0) + 1
    tallest = max(row.values(), default=0) + 1
    width = PAD * 2 + columns * (BOX_W + GAP_X) - GAP_X
    height = top + PAD + tallest * (BOX_H + GAP_Y) - GAP_Y
    return Drawing(width, height, tuple(boxes.values()), tuple(map(svg_path, curves)), curves)
