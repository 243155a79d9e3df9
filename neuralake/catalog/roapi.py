"""The ROAPI config: every Delta and Parquet table of the catalog, served over HTTP,
the PostgreSQL wire protocol and Flight SQL.

Written from the export, so ROAPI serves exactly what the site documents. All three
listeners are set to the addresses in ``settings`` (127.0.0.1): left out, ROAPI's
Postgres and Flight SQL listeners bind 0.0.0.0. Tables ROAPI cannot read (function
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
        from neuralake.catalog.errors import CatalogError

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
