"""The static site: an index with search and tag filters, and one page per table.

Rendered from the export with Jinja2 templates shipped in this package. Autoescaping
is on for every page, so a description containing ``<script>`` shows as text. The
pages use no external asset (inline CSS, a few lines of vanilla JS, inline SVG for
lineage): they work from ``file://`` and offline. 500 tables build in well under the
5 s budget (``benchmarks/catalog_site.py`` measures it).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from neuralake.catalog.export import write_export
from neuralake.catalog.lineage import LineageGraph, draw


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("neuralake.catalog", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _search_text(t: dict[str, Any]) -> str:
    words = [t["id"], t["description"], t["owner"], t["kind_label"], *t["tags"]]
    words += [c["name"] for c in t["columns"]]
    return " ".join(words).lower()


def build_site(export: dict[str, Any], out: Path) -> Path:
    """Write ``index.html``, ``tables/<db>.<table>.html`` and ``catalog.json`` into ``out``."""
    env = _environment()
    out = Path(out)
    (out / "tables").mkdir(parents=True, exist_ok=True)
    tables = export["tables"]
    by_db: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in tables:
        by_db[t["db"]].append({**t, "search": _search_text(t)})
    tags = sorted({tag for t in tables for tag in t["tags"]})
    index = env.get_template("index.html").render(
        export=export, tables_by_db=by_db, tags=tags, root=""
    )
    (out / "index.html").write_text(index, encoding="utf-8")  # the pages declare UTF-8

    graph = LineageGraph(
        tuple(export["lineage"]["nodes"]), tuple(tuple(e) for e in export["lineage"]["edges"])
    )
    known = {t["id"] for t in tables}
    page = env.get_template("table.html")
    for t in tables:
        results = {r["check"]: r for r in (t["quality"] or {}).get("results", [])}
        drawing = draw(graph.around(t["id"]), current=t["id"], known=known)
        html = page.render(export=export, t=t, results=results, drawing=drawing, root="../")
        (out / "tables" / f"{t['id']}.html").write_text(html, encoding="utf-8")
    write_export(export, out / "catalog.json")
    return out / "index.html"
