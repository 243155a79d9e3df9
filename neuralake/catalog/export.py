"""The export: one JSON document describing the whole catalog.

It is the single contract behind the site, the ROAPI config and the tests: the site
renders it, ``roapi.py`` reads it, and tests assert on it. Building it runs no table.
``docs_filters`` is always OR-of-ANDs: a list of groups, each a list of
``[column, op, value]`` with the value cast to the column's type (format 2; format 1
had one flat AND list).
With ``inspect=True`` it reads each Delta log once (schema when undeclared, latest
version and commit time); a log that cannot be read is reported in the export and on
the page (``"error": ...``), never hidden.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import neuralake
from neuralake.catalog import snippets
from neuralake.catalog.catalog import Catalog
from neuralake.catalog.filters import Conjunction, bind
from neuralake.catalog.functions import FunctionTable
from neuralake.catalog.lineage import LineageGraph
from neuralake.catalog.quality import QualityReport
from neuralake.catalog.roapi import WINDOW_SUFFIX, served_names, serving
from neuralake.catalog.tables import Table, _FileTable
from neuralake.settings import Settings

FORMAT = "neuralake-catalog/2"


def _jsonable(value: Any) -> Any:
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, date | time):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text.splitlines()[0]}"


def _resolve(ref: str, db: str, ids: set[str]) -> str:
    """An upstream name as a node id: ``db.table`` if the catalog has it, else as written."""
    if ref in ids:
        return ref
    return f"{db}.{ref}" if f"{db}.{ref}" in ids else ref


def _warehouse_path(table: Table) -> str | None:
    """The table's path inside the warehouse, or ``None`` if it lives elsewhere."""
    if isinstance(table, _FileTable) and table.in_warehouse:
        return table.uri or table.name
    if isinstance(table, FunctionTable) and table.materialize and table.view.in_warehouse:
        return table.view.uri or table.name
    return None


def _table_entry(
    db: str, module: str, table: Table, s: Settings, inspect: bool, ids: set[str]
) -> tuple[dict[str, Any], list[Conjunction]]:
    """The table's export entry, and its docs filters bound to the column types."""
    location = table.location(s)
    entry: dict[str, Any] = {
        "id": f"{db}.{table.name}",
        "db": db,
        "name": table.name,
        "kind": table.kind,
        "kind_label": getattr(table, "kind_label", table.kind),
        "description": table.description,
        "owner": table.owner,
        "tags": list(table.tags),
        "location": location,
        "warehouse_path": _warehouse_path(table),
        "partition_columns": list(table.partition_columns),
        "partitioning": getattr(
            table, "partitioning", "hive" if table.partition_columns else "none"
        ),
        "upstream": [_resolve(u, db, ids) for u in table.upstream],
        "checks": [c.label for c in table.checks],
        "quality": None,
        "freshness": None,
        "schema_source": "declared",
        "schema_error": None,
    }
    columns = table.declared_columns()
    if not columns and table.kind == "delta" and inspect:
        try:
            columns = table.columns(s)
            entry["schema_source"] = "delta log"
        except Exception as error:  # shown on the page and in the export
            entry["schema_error"] = _first_line(error)
    if not columns and not entry["schema_error"]:
        entry["schema_source"] = "not declared"
    entry["columns"] = [
        {"name": c.name, "type": c.type_name, "description": c.description} for c in columns
    ]
    has_log = table.kind == "delta" or (isinstance(table, FunctionTable) and table.materialize)
    if has_log and inspect:
        try:
            version = table.latest_version(s)
            assert version is not None
            entry["freshness"] = {
                "version": version.version,
                "committed_at": version.committed_at.isoformat(timespec="seconds"),
            }
        except Exception as error:  # a missing or unreadable log is a fact worth showing
            entry["freshness"] = {"error": _first_line(error)}
    entry["roapi"] = serving(table, location, columns)
    # Values cast to the column types: what the Polars and SQL snippets must compare with.
    groups = bind(table.docs_filter_groups, {c.name: c.dtype for c in columns})
    entry["docs_filters"] = [[[f.column, f.op, _jsonable(f.value)] for f in g] for g in groups]
    entry["snippets"] = {
        "python": snippets.python_catalog(module, db, table.name, table.docs_filter_groups),
        "polars": snippets.polars_direct(
            entry["roapi"].get("format", table.kind),
            location,
            _warehouse_path(table),
            groups,
            entry["partitioning"],
        ),
        "sql": None,  # set by _serving_snippets: the served name depends on every table
        "curl": None,
    }
    return entry, groups


def _serving_snippets(
    tables: list[dict[str, Any]], filters: dict[str, list[Conjunction]], s: Settings
) -> None:
    """SQL and curl snippets under the name ROAPI serves each table as.

    A name two databases share is served as ``{database}_{table}`` (ROAPI has one
    namespace), so a table's snippet can only be written once every table is known.
    """
    names = served_names({"tables": tables})
    for t in tables:
        if t["id"] in names:
            sql = snippets.sql_query(names[t["id"]], filters[t["id"]])
            t["snippets"]["sql"], t["snippets"]["curl"] = sql, snippets.curl(s.roapi_http, sql)
            if t["roapi"].get("window"):  # the fresh hot path: {table}_recent, in memory
                recent = names[t["id"]] + WINDOW_SUFFIX
                t["snippets"]["sql_recent"] = snippets.sql_query(recent, filters[t["id"]])


def export_catalog(
    catalog: Catalog,
    module: str,
    settings: Settings | None = None,
    inspect: bool = True,
    quality: list[QualityReport] | list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The catalog as a JSON-ready dict (see the module docstring).

    ``module`` is how readers load the catalog in snippets (``load_catalog(module)``);
    ``quality`` attaches the reports of a previous ``catalog.check()`` run.
    """
    s = settings or neuralake.settings()
    items = list(catalog.items())
    ids = {f"{db}.{t.name}" for db, t in items}
    entries = [_table_entry(db, module, t, s, inspect, ids) for db, t in items]
    tables = [entry for entry, _ in entries]
    _serving_snippets(tables, {entry["id"]: groups for entry, groups in entries}, s)
    reports = [r.to_dict() if isinstance(r, QualityReport) else r for r in quality or []]
    by_id = {r["table"]: r for r in reports}
    graph = LineageGraph.build(ids, ((u, t["id"]) for t in tables for u in t["upstream"]))
    for t in tables:
        t["quality"] = by_id.get(t["id"])
        t["downstream"] = sorted(b for a, b in graph.edges if a == t["id"])
    return {
        "format": FORMAT,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": s.profile,
        "module": module,
        "roapi": {
            "http": s.roapi_http,
            "postgres": s.roapi_postgres,
            "flight_sql": s.roapi_flight_sql,
        },
        "databases": [
            {
                "name": name,
                "description": getattr(catalog.db(name), "description", ""),
                "tables": [t["id"] for t in tables if t["db"] == name],
            }
            for name in catalog.dbs()
        ],
        "tables": tables,
        "lineage": {"nodes": list(graph.nodes), "edges": [list(e) for e in graph.edges]},
    }


def write_export(export: dict[str, Any], path: Path) -> Path:
    """Write the export as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(export, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
