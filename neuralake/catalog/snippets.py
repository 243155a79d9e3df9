"""Copy-paste snippets for a table page: the catalog in Python, Polars, SQL and curl.

Each snippet is generated from the table's ``docs_filters`` so it returns rows the page
can promise: exactly the rows matching those filters (a list of lists is OR of ANDs in
every snippet). The Polars and SQL snippets get the values *bound* to the column types
(``date.fromisoformat('2026-11-01')``, ``DATE '2026-11-01'``), because neither casts a
string to a date by itself. Values are written as Python literals or SQL literals with
quotes doubled; a value with no valid literal (null, NaN, infinity) is refused, never
rendered. These strings are documentation for a reader to run, never queries this
library sends.
"""

from __future__ import annotations

import math
import numbers
import re
import shlex
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from neuralake.catalog.errors import CatalogError
from neuralake.catalog.filters import Filter, Filters, normalize
from neuralake.catalog.tables import parquet_source

# Each filter operator as a condition in Python (Polars) and in SQL (DataFusion), side by
# side: ``{col}`` is the quoted column, ``{value}`` the value as a literal of that language.
_CONDITIONS = {
    "=": ("({col} == {value})", "{col} = {value}"),
    "!=": ("({col} != {value})", "{col} <> {value}"),
    "<": ("({col} < {value})", "{col} < {value}"),
    "<=": ("({col} <= {value})", "{col} <= {value}"),
    ">": ("({col} > {value})", "{col} > {value}"),
    ">=": ("({col} >= {value})", "{col} >= {value}"),
    "in": ("{col}.is_in({value})", "{col} IN {value}"),
    "not in": ("~{col}.is_in({value})", "{col} NOT IN {value}"),
    "contains": ("{col}.str.contains({value}, literal=True)", "strpos({col}, {value}) > 0"),
}
_PLAIN_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _invalid(value: Any) -> CatalogError:
    return CatalogError(f"{value!r} has no literal in a snippet: use a str, number, bool or date")


def _check_finite(value: Any) -> None:
    if value is None or (isinstance(value, float | Decimal) and not math.isfinite(value)):
        raise _invalid(value)


def py_literal(value: Any) -> str:
    """A Python literal for a filter value; dates use ``date``/``datetime``/``time``."""
    _check_finite(value)
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, datetime):
        return f"datetime.fromisoformat({value.isoformat()!r})"
    if isinstance(value, date | time):
        return f"{type(value).__name__}.fromisoformat({value.isoformat()!r})"
    if isinstance(value, str | bool | numbers.Real | Decimal):
        return repr(value)
    raise _invalid(value)


def _imports(groups: list[list[Filter]]) -> list[str]:
    """``from datetime import ...`` / ``from decimal import Decimal`` lines the values need."""
    values = []
    for f in (f for g in groups for f in g):
        is_list = isinstance(f.value, list | tuple | set | frozenset)
        values += list(f.value) if is_list else [f.value]
    temporal = sorted({type(v).__name__ for v in values if isinstance(v, date | time)})
    lines = [f"from datetime import {', '.join(temporal)}"] if temporal else []
    if any(isinstance(v, Decimal) for v in values):
        lines.append("from decimal import Decimal")
    return lines


def _py_condition(f: Filter) -> str:
    return _CONDITIONS[f.op][0].format(col=f"pl.col({f.column!r})", value=py_literal(f.value))


def _py_predicate(groups: list[list[Filter]]) -> str:
    ands = [" & ".join(_py_condition(f) for f in g) for g in groups]
    if len(ands) == 1:
        return ands[0]
    return " | ".join(f"({a})" for a in ands)


def _filter_code(f: Filter) -> str:
    return f"Filter({f.column!r}, {f.op!r}, {py_literal(f.value)})"


def python_catalog(module: str, db: str, table: str, filters: Filters | None) -> str:
    """Read the table through the catalog, with the page's example filters as declared."""
    groups = normalize(filters)
    lines = [
        *_imports(groups),
        "from neuralake.catalog import Filter, load_catalog",
        "",
        f"catalog = load_catalog({module!r})",
        f"frame = catalog.db({db!r}).table(",
        f"    {table!r},",
    ]
    if len(groups) == 1:
        lines.append("    filters=[")
        lines += [f"        {_filter_code(f)}," for f in groups[0]]
        lines.append("    ],")
    elif groups:
        lines.append("    filters=[  # a list of lists: OR of ANDs")
        lines += [f"        [{', '.join(_filter_code(f) for f in g)}]," for g in groups]
        lines.append("    ],")
    lines += [").collect()", "print(frame)"]
    return "\n".join(lines) + "\n"


def polars_direct(
    kind: str,
    uri: str | None,
    warehouse_path: str | None,
    filters: Filters | None,
    partitioning: str = "none",
) -> str | None:
    """Read the files with Polars alone (Delta and Parquet tables only).

    ``warehouse_path`` (the table's path inside the warehouse, if it lives there) makes
    the snippet follow the reader's profile instead of hard-coding this export's URI.
    A Parquet directory is read as ``<dir>/**/*.parquet`` (a ``.parquet`` file as is),
    with ``hive_partitioning=True`` when the table is hive-partitioned, so a filter on
    a partition column finds it.
    """
    if kind == "delta":
        reader = "pl.scan_delta"
    elif kind == "parquet":
        reader = "pl.scan_parquet"
    else:
        return None
    groups = normalize(filters)
    where = f"s.table_uri({warehouse_path!r})" if warehouse_path else repr(uri)
    args = [where]
    if kind == "parquet":
        path = warehouse_path or uri or ""
        suffix = parquet_source(path).removeprefix(path)
        if suffix:
            args = [f"{where} + {suffix!r}"]
        if partitioning == "hive":
            args.append("hive_partitioning=True")
    args.append("storage_options=s.storage_options or None")
    lines = [
        *_imports(groups),
        "import polars as pl",
        "",
        "import neuralake",
        "",
        "s = neuralake.settings()",
        "frame = (",
        f"    {reader}({', '.join(args)})",
    ]
    if groups:
        lines.append(f"    .filter({_py_predicate(groups)})")
    lines += ["    .collect()", ")", "print(frame)"]
    return "\n".join(lines) + "\n"


def sql_identifier(name: str) -> str:
    """An identifier as DataFusion reads it (quoted unless plain lower-case)."""
    return name if _PLAIN_IDENT.match(name) else '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A SQL literal: strings quoted with ``'`` doubled, lists as ``(a, b)``, typed dates.

    ``None``, NaN and infinities have no literal a comparison could use: refused.
    """
    _check_finite(value)
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, numbers.Real):
        return repr(float(value))
    if isinstance(value, list | tuple | set | frozenset):
        return "(" + ", ".join(sql_literal(v) for v in value) + ")"
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, time):
        return f"TIME '{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise _invalid(value)


def _sql_condition(f: Filter) -> str:
    return _CONDITIONS[f.op][1].format(col=sql_identifier(f.column), value=sql_literal(f.value))


def sql_where(filters: Filters | None) -> str:
    """The ``WHERE`` body: ``a AND b``, or ``(a AND b) OR (c)`` for several groups."""
    groups = normalize(filters)
    ands = [" AND ".join(_sql_condition(f) for f in g) for g in groups]
    return ands[0] if len(ands) == 1 else " OR ".join(f"({a})" for a in ands)


def sql_query(table: str, filters: Filters | None, limit: int = 100) -> str:
    """The SQL to send to ROAPI for this table."""
    query = f"SELECT * FROM {sql_identifier(table)}"
    groups = normalize(filters)
    if groups:
        query += f" WHERE {sql_where(groups)}"
    return f"{query} LIMIT {limit}"


def curl(roapi_http: str, query: str) -> str:
    """POST the SQL to ROAPI's ``/api/sql`` endpoint; the answer is JSON rows."""
    return f"curl -s -X POST http://{roapi_http}/api/sql --data-binary {shlex.quote(query)}\n"
