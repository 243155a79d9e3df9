"""The ROAPI config: every Delta and Parquet table of the catalog, served over HTTP,
the PostgreSQL wire protocol and Flight SQL.

:func:`serving` decides, per table, how ROAPI serves it (the export's ``roapi`` entry);
the config is then written from the export, so ROAPI serves exactly what the site
documents. All three listeners are set to the addresses in ``settings`` (127.0.0.1):
left out, ROAPI's Postgres and Flight SQL listeners bind 0.0.0.0. Tables ROAPI cannot read (function
tables, CSV, PostgreSQL) are listed at the top of the file with the reason. A
hive-partitioned Parquet table gets ROAPI's ``partition_columns`` (their values live in
folder names) and its declared file columns, and is read from storage: ROAPI 0.12.7
ignores partition columns for in-memory tables.

Two ways to serve a Delta table, chosen per table (``DeltalakeTable(roapi_memory_table=...)``):

- **provider** (default): DataFusion scans the table's current Parquet files on every
  query; every ``reload_interval`` ROAPI reads the new log entries, so a commit is
  served within about that interval (measured in ``tests/test_api.py``). The
  writer's partitioned bronze table can only be served this way: ROAPI's memory loader
  reads the raw Parquet files, which do not hold the partition columns, and fails with
  "Mismatch between schema and batches" (0.12.7 and 0.13.0 alike).
- **memory**: ROAPI loads the whole table into Arrow arrays at start and at every reload,
  in batches of :data:`MEMORY_BATCH_ROWS` rows. Queries skip S3 entirely: measured on
  10M rows, point p50 41 ms in memory vs 375 ms as a provider (load 15-17,
  ``docs/benchmarks/api_latency.json``). Costs RAM and a full re-read per reload: use
  it for small, unpartitioned tables (serving copies, materialized views).

A Delta table may also get a **serving window** (``DeltalakeTable(roapi_window_s=60)``):
its last 60 seconds as ``{name}_recent``, one Parquet object kept fresh by
:mod:`neuralake.api.window` and held in memory, reloaded every
:data:`WINDOW_RELOAD_INTERVAL_S` seconds: the fresh hot path (``docs/api.md``, "Fresh
and fast"). The lab's ``serve()`` starts the process that rewrites it.

Names: a table is served as its own name, or as ``{database}_{table}`` when two
databases hold tables of one name (ROAPI has a single namespace).

Run it with the S3 credentials in the environment::

    subprocess.Popen(["roapi", "-c", "roapi.yaml"], env={**os.environ, **settings().roapi_env})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from neuralake.api.window import window_uri
from neuralake.catalog.errors import CatalogError
from neuralake.catalog.functions import FunctionTable
from neuralake.catalog.schema import ColumnInfo
from neuralake.catalog.tables import Table

#: Polars types as ROAPI's config names Arrow types (``partition_columns[].data_type``).
_ARROW_TYPES = {
    "Int8": "Int8",
    "Int16": "Int16",
    "Int32": "Int32",
    "Int64": "Int64",
    "UInt8": "UInt8",
    "UInt16": "UInt16",
    "UInt32": "UInt32",
    "UInt64": "UInt64",
    "Float32": "Float32",
    "Float64": "Float64",
    "Boolean": "Boolean",
    "String": "Utf8",
    "Date": "Date32",
}


def _arrow_type(name: str, columns: tuple[ColumnInfo, ...]) -> str | None:
    """The ROAPI (Arrow) type of a declared column, or ``None`` if undeclared or unmapped."""
    dtypes = {c.name: c.dtype for c in columns}
    return _ARROW_TYPES.get(str(dtypes[name].base_type())) if name in dtypes else None


def _hive_parquet(table: Table, location: str | None, columns: tuple[ColumnInfo, ...]) -> dict:
    """How ROAPI serves a hive-partitioned Parquet directory.

    Partition values live in folder names (``channel=9/``), so ROAPI needs
    ``partition_columns`` (typed as declared, else as text: a folder name); version
    0.12.7 adds them only to tables it reads from storage (not ``use_memory_table``).
    With every file column declared too, ROAPI reads files that repeat the partition
    columns (as Polars writes them) or not (as Spark and pyarrow do); without them it
    infers the file schema, and the files must not repeat them ("duplicate qualified
    field name").
    """
    parts = list(table.partition_columns)
    serve: dict[str, Any] = {
        "served": True,
        "format": "parquet",
        "uri": location,
        "use_memory_table": False,
        "partition_columns": [
            {"name": p, "data_type": _arrow_type(p, columns) or "Utf8", "nullable": True}
            for p in parts
        ],
    }
    files = [(c.name, _arrow_type(c.name, columns)) for c in columns if c.name not in parts]
    if files and all(t for _, t in files):
        serve["schema"] = [{"name": n, "data_type": t, "nullable": True} for n, t in files]
    return serve


def serving(table: Table, location: str | None, columns: tuple[ColumnInfo, ...]) -> dict[str, Any]:
    """How ROAPI serves ``table`` (the export's ``roapi`` entry), or why it cannot."""
    if isinstance(table, FunctionTable):
        if table.materialize:
            return {"served": True, "format": "delta", "uri": location, "use_memory_table": False}
        return {
            "served": False,
            "reason": "function tables are computed in Python; declare "
            "@table(materialize=True) to serve the view",
        }
    if table.kind == "delta":
        memory = getattr(table, "roapi_memory_table", False)
        if memory and table.partition_columns:
            raise CatalogError(
                f"table {table.name!r} is partitioned: ROAPI cannot load a partitioned Delta "
                "table into memory; drop roapi_memory_table=True (or serve an unpartitioned copy)"
            )
        serve: dict[str, Any] = {
            "served": True,
            "format": "delta",
            "uri": location,
            "use_memory_table": memory,
        }
        window_s = getattr(table, "roapi_window_s", None)
        if window_s is not None:
            if window_s <= 0 or location is None:
                raise CatalogError(
                    f"table {table.name!r}: roapi_window_s={window_s!r} needs a positive "
                    "number of seconds and a table location"
                )
            serve["window"] = {"seconds": window_s, "uri": window_uri(location)}
        return serve
    if table.kind == "parquet":
        if getattr(table, "partitioning", "none") == "hive":
            return _hive_parquet(table, location, columns)
        return {"served": True, "format": "parquet", "uri": location, "use_memory_table": True}
    return {
        "served": False,
        "reason": f"{table.kind} tables are not exported to ROAPI: it serves Delta and Parquet",
    }


def _roapi_uri(uri: str) -> str:
    """ROAPI takes local tables as plain paths; ``s3://`` URIs pass through."""
    return uri.removeprefix("file://")


#: Seconds between ROAPI's re-reads of every table: the bound on how stale a served table
#: is (plus the re-read itself: a few ms for a provider, a full load for a memory table).
RELOAD_INTERVAL_S = 2

#: Seconds between re-reads of a memory table (its own ``reload_interval``, which
#: overrides the global one): each re-read loads the whole table, so not every 2 s.
MEMORY_RELOAD_INTERVAL_S = 300

#: Rows per Arrow record batch when ROAPI loads a memory table (its table option
#: ``batch_size``; ROAPI's default is 8,192). A MemTable has no statistics to prune with,
#: so every query runs its filter over every batch, and each batch has a fixed cost (new
#: arrays for every column, even when no row matches). On 10M rows (1,230 batches at
#: the default, 10 at this size) point p50 fell from 166 to 41 ms and p99 from 1,810 to
#: 622 ms in the same run (``docs/benchmarks/api_latency.json``, ``docs/api.md``).
MEMORY_BATCH_ROWS = 1_048_576


def delta_table_entry(name: str, uri: str, memory: bool) -> dict[str, Any]:
    """ROAPI's config entry for one Delta table, in provider or memory mode.

    A memory table gets its own, longer ``reload_interval`` (each reload reads it all)
    and large record batches (:data:`MEMORY_BATCH_ROWS`).
    """
    entry: dict[str, Any] = {
        "name": name,
        "uri": _roapi_uri(uri),
        "option": {"format": "delta", "use_memory_table": memory},
    }
    if memory:
        entry["reload_interval"] = {"secs": MEMORY_RELOAD_INTERVAL_S, "nanos": 0}
        entry["batch_size"] = MEMORY_BATCH_ROWS
    return entry


#: Seconds between ROAPI's re-reads of a serving window (:mod:`neuralake.api.window`):
#: one GET of a small Parquet object, so every second.
WINDOW_RELOAD_INTERVAL_S = 1

#: The suffix of a serving window's name: ``bronze`` -> ``bronze_recent``.
WINDOW_SUFFIX = "_recent"


def window_table_entry(name: str, uri: str) -> dict[str, Any]:
    """ROAPI's config entry for a serving window: a Parquet object held in memory,
    re-read every :data:`WINDOW_RELOAD_INTERVAL_S` seconds."""
    return {
        "name": name,
        "uri": _roapi_uri(uri),
        "option": {"format": "parquet", "use_memory_table": True},
        "reload_interval": {"secs": WINDOW_RELOAD_INTERVAL_S, "nanos": 0},
        "batch_size": MEMORY_BATCH_ROWS,
    }


def windows(export: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Table id -> its serving window (``name``, ``uri``, ``seconds``, ``live_uri``)."""
    names = served_names(export)
    return {
        t["id"]: {**t["roapi"]["window"], "name": names[t["id"]] + WINDOW_SUFFIX,
                  "live_uri": t["roapi"]["uri"]}
        for t in export["tables"]
        if t["roapi"].get("window")
    }  # fmt: skip


def served_names(export: dict[str, Any]) -> dict[str, str]:
    """Table id -> the name ROAPI serves it as: ``table``, or ``database_table`` on a clash."""
    served = [t for t in export["tables"] if t["roapi"]["served"]]
    counts: dict[str, int] = {}
    for t in served:
        counts[t["name"]] = counts.get(t["name"], 0) + 1
    return {
        t["id"]: t["name"] if counts[t["name"]] == 1 else f"{t['db']}_{t['name']}" for t in served
    }


def roapi_config(
    export: dict[str, Any],
    http: str | None = None,
    postgres: str | None = None,
    flight_sql: str | None = None,
    reload_interval_s: int = RELOAD_INTERVAL_S,
) -> dict[str, Any]:
    """The config as a dict; the addresses default to the export's (from settings).

    ROAPI re-reads every table each ``reload_interval_s`` seconds, which it only does
    with ``disable_read_only`` (that also opens ``POST /api/table``, on 127.0.0.1 only).
    """
    addr = export["roapi"]
    names = served_names(export)
    tables = []
    for t in export["tables"]:
        serve = t["roapi"]
        if not serve["served"]:
            continue
        if serve["format"] == "delta":
            entry = delta_table_entry(names[t["id"]], serve["uri"], serve["use_memory_table"])
        else:
            entry = {
                "name": names[t["id"]],
                "uri": _roapi_uri(serve["uri"]),
                "option": {
                    "format": serve["format"],
                    "use_memory_table": serve["use_memory_table"],
                },
            }
            if serve["use_memory_table"]:
                entry["batch_size"] = MEMORY_BATCH_ROWS
        if serve.get("schema"):
            entry["schema"] = {"columns": serve["schema"]}
        if serve.get("partition_columns"):
            entry["partition_columns"] = serve["partition_columns"]
        tables.append(entry)
        if serve.get("window"):
            window = windows(export)[t["id"]]
            tables.append(window_table_entry(window["name"], window["uri"]))
    every = [entry["name"] for entry in tables]
    clashes = sorted({n for n in every if every.count(n) > 1})
    if clashes:
        raise CatalogError(
            f"ROAPI has one namespace and {', '.join(clashes)} names two tables even as "
            "database_table: rename one of them"
        )
    return {
        "addr": {
            "http": http or addr["http"],
            "postgres": postgres or addr["postgres"],
            "flight_sql": flight_sql or addr["flight_sql"],
        },
        "reload_interval": {"secs": reload_interval_s, "nanos": 0},
        "disable_read_only": True,
        "tables": tables,
    }


def skipped(export: dict[str, Any]) -> list[tuple[str, str]]:
    """``(table id, reason)`` for every table the config leaves out."""
    return [(t["id"], t["roapi"]["reason"]) for t in export["tables"] if not t["roapi"]["served"]]


def roapi_yaml(export: dict[str, Any], **addresses: Any) -> str:
    """The config as YAML, headed by comments naming the tables left out and why."""
    header = [f"# ROAPI config for catalog module {export['module']} (profile {export['profile']})"]
    header += [f"# skipped {table}: {reason}" for table, reason in skipped(export)]
    body = yaml.safe_dump(roapi_config(export, **addresses), sort_keys=False)
    return "\n".join(header) + "\n" + body


def write_roapi(export: dict[str, Any], path: Path, **addresses: Any) -> Path:
    """Write the config (see :func:`roapi_yaml`) as UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(roapi_yaml(export, **addresses), encoding="utf-8")
    return path
