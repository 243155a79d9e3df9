"""Copy-paste snippets for a table page: the catalog in Python, Polars, SQL and curl.

Each snippet is generated from the table's ``docs_filters`` so it returns rows the page
can promise: exactly the rows matching those filters. Values are written as Python
literals (``repr``) or SQL literals with quotes doubled; these strings are documentation
for a reader to run, never queries this library sends.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any

from neuralake.catalog.filters import Filter

_PY_OPS = {"=": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_PLAIN_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _py_condition(f: Filter) -> str:
    col = f"pl.col({f.column!r})"
    if f.op in _PY_OPS:
        return f"({col} {_PY_OPS[f.op]} {f.value!r})"
    if f.op == "in":
        return f"{col}.is_in({list(f.value)!r})"
    if f.op == "not in":
        return f"~{col}.is_in({list(f.value)!r})"
    return f"{col}.str.contains({f.value!r}, literal=True)"


def python_catalog(module: str, db: str, table: str, filters: Sequence[Filter]) -> str:
    """Read the table through the catalog, with the page's example filters."""
    lines = [
        "from neuralake.catalog import Filter, load_catalog",
        "",
        f"catalog = load_catalog({module!r})",
        f"frame = catalog.db({db!r}).table(",
        f"    {table!r},",
    ]
    if filters:
        lines.append("    filters=[")
        lines += [f"        Filter({f.column!r}, {f.op!r}, {f.value!r})," for f in filters]
        lines.append("    ],")
    lines += [").collect()", "print(frame)"]
    return "\n".join(lines) + "\n"


def polars_direct(
    kind: str, uri: str | None, warehouse_path: str | None, filters: Sequence[Filter]
) -> str | None:
    """Read the files with Polars alone (Delta and Parquet tables only).

    ``warehouse_path`` (the table's path inside the warehouse, if it lives there) makes
    the snippet follow the reader's profile instead of hard-coding this export's URI.
    """
    if kind == "delta":
        reader = "pl.scan_delta"
    elif kind == "parquet":
        reader = "pl.scan_parquet"
    else:
        return None
    where = f"s.table_uri({warehouse_path!r})" if warehouse_path else repr(uri)
    if kind == "parquet":
        where = f"{where} + '/**/*.parquet'"
    lines = [
        "import polars as pl",
        "",
        "import neuralake",
        "",
        "s = neuralake.settings()",
        "frame = (",
        f"    {reader}({where}, storage_options=s.storage_options or None)",
    ]
    if filters:
        lines.append(f"    .filter({' & '.join(_py_condition(f) for f in filters)})")
    lines += ["    .collect()", ")", "print(frame)"]
    return "\n".join(lines) + "\n"


def sql_identifier(name: str) -> str:
    """An identifier as DataFusion reads it (quoted unless plain lower-case)."""
    return name if _PLAIN_IDENT.match(name) else '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A SQL literal: strings quoted with ``'`` doubled, lists as ``(a, b)``."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple | set | frozenset):
        return "(" + ", ".join(sql_literal(v) for v in value) + ")"
    return "'" + str(value).replace("'", "''") + "'"


def _sql_condition(f: Filter) -> str:
    col = sql_identifier(f.column)
    if f.op == "in":
        return f"{col} IN {sql_literal(f.value)}"
    if f.op == "not in":
        return f"{col} NOT IN {sql_literal(f.value)}"
    if f.op == "contains":
        return f"strpos({col}, {sql_literal(f.value)}) > 0"
    return f"{col} {'<>' if f.op == '!=' else f.op} {sql_literal(f.value)}"


def sql_query(table: str, filters: Sequence[Filter], limit: int = 100) -> str:
    """The SQL to send to ROAPI for this table."""
    where = " AND ".join(_sql_condition(f) for f in filters)
    query = f"SELECT * FROM {sql_identifier(table)}"
    return f"{query} WHERE {where} LIMIT {limit}" if where else f"{query} LIMIT {limit}"


def curl(roapi_http: str, query: str) -> str:
    """POST the SQL to ROAPI's ``/api/sql`` endpoint; the answer is JSON rows."""
    return f"curl -s -X POST http://{roapi_http}/api/sql --data-binary {shlex.quote(query)}\n"
