"""Lineage layout: columns, rows and edges that never run behind a box."""

from neuralake.catalog.lineage import BOX_H, LineageGraph, draw, layers

CHAIN = [("topic", "bronze"), ("bronze", "silver"), ("silver", "gold"), ("devices", "gold")]


def test_a_dimension_table_sits_next_to_the_table_it_feeds():
    depth = layers(LineageGraph.build([], CHAIN))
    assert depth == {"topic": 0, "bronze": 1, "silver": 2, "devices": 2, "gold": 3}


def test_a_chain_stays_on_one_row_and_sources_go_below_it():
    boxes = {b.id: b for b in draw(LineageGraph.build([], CHAIN), None, set()).boxes}
    assert boxes["topic"].y == boxes["bronze"].y == boxes["silver"].y == boxes["gold"].y
    assert boxes["devices"].y > boxes["silver"].y


def test_an_edge_that_skips_a_column_runs_above_every_box():
    graph = LineageGraph.build([], [*CHAIN, ("bronze", "api")])
    drawing = draw(graph, None, set())
    top = min(b.y for b in drawing.boxes)
    skip = drawing.curves[graph.edges.index(("bronze", "api"))]
    middle = [y for x, y in skip[3:-3]]  # the run between the two gaps
    assert all(y < top for y in middle), (middle, top)
    assert len(drawing.paths) == len(graph.edges)
    assert drawing.paths[0].startswith("M") and " C" in drawing.paths[0]
    assert drawing.height >= top + BOX_H
