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

Run it with the S3 credentials in the environment::

    subprocess.Popen(["roapi", "-c", "roapi.yaml"], env={**os.environ, **settings().roapi_env})
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

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
        return {"served": True, "format": "delta", "uri": location, "use_memory_table": memory}
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


def roapi_config(
    export: dict[str, Any],
    http: str | None = None,
    postgres: str | None = None,
    flight_sql: str | None = None,
) -> dict[str, Any]:
    """The config as a dict; the addresses default to the export's (from settings)."""
    addr = export["roapi"]
    tables = []
    for t in export["tables"]:
        serve = t["roapi"]
        if not serve["served"]:
            continue
        entry: dict[str, Any] = {
            "name": t["name"],
            "uri": _roapi_uri(serve["uri"]),
            "option": {"format": serve["format"], "use_memory_table": serve["use_memory_table"]},
        }
        if serve.get("schema"):
            entry["schema"] = {"columns": serve["schema"]}
        if serve.get("partition_columns"):
            entry["partition_columns"] = serve["partition_columns"]
        tables.append(entry)
    names = [t["name"] for t in tables]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CatalogError(
            f"ROAPI has one namespace but tables {', '.join(duplicates)} exist in several "
            "databases: rename them"
        )
    return {
        "addr": {
            "http": http or addr["http"],
            "postgres": postgres or addr["postgres"],
            "flight_sql": flight_sql or addr["flight_sql"],
        },
        "tables": tables,
    }


def skipped(export: dict[str, Any]) -> list[tuple[str, str]]:
    """``(table id, reason)`` for every table the config leaves out."""
    return [(t["id"], t["roapi"]["reason"]) for t in export["tables"] if not t["roapi"]["served"]]


def roapi_yaml(export: dict[str, Any], **addresses: str | None) -> str:
    """The config as YAML, headed by comments naming the tables left out and why."""
    header = [f"# ROAPI config for catalog module {export['module']} (profile {export['profile']})"]
    header += [f"# skipped {table}: {reason}" for table, reason in skipped(export)]
    body = yaml.safe_dump(roapi_config(export, **addresses), sort_keys=False)
    return "\n".join(header) + "\n" + body


def write_roapi(export: dict[str, Any], path: Path, **addresses: str | None) -> Path:
    """Write the config (see :func:`roapi_yaml`) as UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(roapi_yaml(export, **addresses), encoding="utf-8")
    return path
