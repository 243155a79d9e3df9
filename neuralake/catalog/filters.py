"""Filters: ``Filter(column, op, value)`` lists, translated to Polars expressions or SQL.

A list of filters means AND; a list of lists means OR of ANDs (disjunctive normal
form, as in delta-rs and Neuralink's datarepo)::

    [Filter("day", "=", "2026-11-01"), Filter("channel", "<", 8)]          # a AND b
    [[Filter("device_id", "=", "D1")], [Filter("device_id", "=", "D2")]]  # a OR b

Why expressions and not SQL text: a Polars expression handed to ``scan_delta`` or
``scan_parquet`` reaches the optimizer, which uses it for hive-partition pruning and
Parquet min/max statistics (``initialize_scan_predicate: Predicate pushdown allows
skipping 6 / 8 files`` in Polars' verbose log). For PostgreSQL the same filters become
``psycopg.sql`` with ``%s`` placeholders: a value is always data, never query text.

A filter is checked when it is written (``Filter(...)`` refuses a bad op, a ``None`` or
NaN value, a column name that is not an identifier) and *bound* when a table is read:
:func:`bind` casts each value to the column's declared type, so
``Filter("day", "=", "2026-11-01")`` on a ``Date`` column compares dates in Polars
exactly as PostgreSQL would (it casts a text parameter to the column type); Polars
alone refuses to compare a date with a string.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple, TypeAlias

import polars as pl
from psycopg import sql

from neuralake.catalog.errors import CatalogError
from neuralake.catalog.names import check_name

OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains")

_LIST_TYPES = (list, tuple, set, frozenset)
_SCALAR_TYPES = (str, bool, numbers.Real, Decimal, date, time)


class _FilterFields(NamedTuple):
    column: str
    op: str
    value: Any


class Filter(_FilterFields):
    """One condition ``column op value``, checked when written.

    ``Filter("channel", "in", [0, 1])``, ``Filter("task", "=", "rest")``,
    ``Filter("started_at", ">=", "2026-11-01")`` (cast to the column's type at read time).
    Ops: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``in``, ``not in`` (a list value) and
    ``contains`` (literal text). ``None`` and NaN are refused: they match no row.
    """

    __slots__ = ()

    def __new__(cls, column: str, op: str, value: Any) -> Filter:
        _validate(column, op, value)
        return super().__new__(cls, column, op, value)


Conjunction = list[Filter]
#: What ``filters=`` accepts: ``[Filter, ...]`` (AND) or ``[[Filter, ...], ...]`` (OR of ANDs);
#: :func:`normalize` refuses a list that mixes the two.
Filters: TypeAlias = Iterable[Filter | Iterable[Filter]]


def _validate(column: Any, op: Any, value: Any) -> None:
    check_name("filter column", column)
    shown = f"Filter({column!r}, {op!r}, {value!r})"
    if op not in OPS:
        raise CatalogError(f"unknown filter op {op!r} in {shown}: use one of {', '.join(OPS)}")
    if op in ("in", "not in"):
        if not isinstance(value, _LIST_TYPES):
            raise CatalogError(
                f"{shown} needs a list value, e.g. Filter({column!r}, {op!r}, [1, 2])"
            )
        for item in value:
            _check_scalar(item, column, shown)
        return
    if op == "contains" and not isinstance(value, str):
        raise CatalogError(f"{shown} needs a string value: 'contains' matches text")
    _check_scalar(value, column, shown)


def _check_scalar(value: Any, column: str, shown: str) -> None:
    if value is None:
        raise CatalogError(
            f"{shown} compares with null, which matches no row (in SQL as in Polars): "
            f"drop it, or select nulls after the read with .filter(pl.col({column!r}).is_null())"
        )
    if isinstance(value, float | Decimal) and not math.isfinite(value):
        raise CatalogError(
            f"{shown} compares with {value}, which SQL and Polars treat differently: "
            f"use a finite number, or .filter(pl.col({column!r}).is_nan()) after the read"
        )
    if not isinstance(value, _SCALAR_TYPES):
        raise CatalogError(
            f"{shown} has a {type(value).__name__} value: use a str, number, bool, "
            "date, datetime or time"
        )


def normalize(filters: Filters | None) -> list[Conjunction]:
    """Return filters as OR-of-ANDs (``[[...], [...]]``), validating every filter.

    ``filters`` is read exactly once, so a generator works like a list.
    """
    if filters is None:
        return []
    if isinstance(filters, Filter):
        raise CatalogError(f"filters={filters} is one filter: pass a list, filters=[{filters}]")
    if isinstance(filters, str | bytes | Mapping) or not isinstance(filters, Iterable):
        raise CatalogError(
            f"filters is a {type(filters).__name__}: pass a list of Filter (AND) "
            "or a list of lists of Filter (OR of ANDs)"
        )
    items = list(filters)
    if not items:
        return []
    given: list[Sequence[object]]
    if all(isinstance(f, Filter) for f in items):
        given = [items]
    elif all(isinstance(f, _LIST_TYPES) and not isinstance(f, Filter) for f in items):
        given = [list(group) for group in items]
    else:
        raise CatalogError(
            "filters must be a list of Filter (AND) or a list of lists of Filter (OR of ANDs)"
        )
    groups: list[Conjunction] = []
    for group in given:
        if not group:
            raise CatalogError("an empty AND-group in filters matches everything: remove it")
        conjunction: Conjunction = []
        for f in group:
            if not isinstance(f, Filter):
                raise CatalogError(f"{f!r} is not a Filter: write Filter(column, op, value)")
            conjunction.append(f)
        groups.append(conjunction)
    return groups


def referenced_columns(filters: Filters | None) -> set[str]:
    """Every column a filter mentions (to check them against a table's schema)."""
    return {f.column for group in normalize(filters) for f in group}


# -- binding: values cast to the column types -----------------------------------------


def bind(filters: Filters | None, schema: Mapping[str, pl.DataType]) -> list[Conjunction]:
    """The filters with every value cast to its column's type in ``schema``.

    Numbers compared with numeric columns are kept as written (``channel < 2.5`` must
    not become ``channel < 2``); ISO text on a ``Date``/``Datetime``/``Time`` column is
    parsed; anything else goes through Polars' strict cast (``"5"`` on an ``Int32``
    column is ``5``). A naive datetime on a zoned column is taken as UTC. Columns not in
    ``schema`` keep their values. A value that cannot be cast is a ``CatalogError``.
    """
    bound = []
    for group in normalize(filters):
        bound.append(
            [
                f if f.column not in schema else Filter(f.column, f.op, _cast(f, schema[f.column]))
                for f in group
            ]
        )
    return bound


def _cast(f: Filter, dtype: pl.DataType) -> Any:
    if f.op == "contains":
        if dtype not in (pl.String, pl.Categorical) and not isinstance(dtype, pl.Enum):
            raise CatalogError(f"{f}: 'contains' matches text, but {f.column!r} is {dtype}")
        return f.value
    if isinstance(f.value, _LIST_TYPES):
        return [_cast_scalar(f, v, dtype) for v in f.value]
    return _cast_scalar(f, f.value, dtype)


def _cast_scalar(f: Filter, value: Any, dtype: pl.DataType) -> Any:
    is_number = isinstance(value, numbers.Real | Decimal) and not isinstance(value, bool)
    if is_number and dtype.is_numeric():
        return value
    if isinstance(value, str) and dtype.is_temporal():
        value = _parse_iso(f, value, dtype)
    try:
        cast = pl.Series([value]).cast(dtype, strict=True)
    except pl.exceptions.PolarsError:
        raise CatalogError(
            f"{f}: {value!r} cannot be cast to {f.column!r}'s type {dtype}: "
            f"write a value of that type"
        ) from None
    return cast[0]


def _parse_iso(f: Filter, text: str, dtype: pl.DataType) -> date | datetime | time | str:
    """ISO text as the temporal value a ``Date``/``Datetime``/``Time`` column holds."""
    parse: Callable[[str], date | time]  # a datetime is a date
    if isinstance(dtype, pl.Datetime):
        parse, example = datetime.fromisoformat, "2026-11-01T10:30:00+00:00"
    elif dtype == pl.Date:
        parse, example = date.fromisoformat, "2026-11-01"
    elif dtype == pl.Time:
        parse, example = time.fromisoformat, "10:30:00"
    else:
        return text  # Duration: left to Polars' cast, which says what it refuses
    try:
        return parse(text)
    except ValueError:
        raise CatalogError(f"{f}: {text!r} is not an ISO {dtype} such as {example!r}") from None


# -- Polars ---------------------------------------------------------------------------


def _expr(f: Filter) -> pl.Expr:
    col = pl.col(f.column)
    match f.op:
        case "=":
            return col == f.value
        case "!=":
            return col != f.value
        case "<":
            return col < f.value
        case "<=":
            return col <= f.value
        case ">":
            return col > f.value
        case ">=":
            return col >= f.value
        case "in":
            return col.is_in(list(f.value))
        case "not in":
            return ~col.is_in(list(f.value))
        case "contains":
            return col.str.contains(f.value, literal=True)
    raise AssertionError(f.op)  # unreachable: Filter checked the op


def to_expr(filters: Filters | None) -> pl.Expr | None:
    """The Polars expression for ``filters``, or ``None`` when there are none."""
    groups = normalize(filters)
    if not groups:
        return None
    return pl.any_horizontal(*(pl.all_horizontal(*(_expr(f) for f in g)) for g in groups))


# -- PostgreSQL -----------------------------------------------------------------------

_SQL_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _sql(f: Filter) -> tuple[sql.Composable, Any]:
    col = sql.Identifier(f.column)
    if f.op in _SQL_OPS:
        return sql.SQL("{} {} %s").format(col, sql.SQL(_SQL_OPS[f.op])), f.value
    if f.op == "in":
        return sql.SQL("{} = ANY(%s)").format(col), list(f.value)
    if f.op == "not in":
        return sql.SQL("NOT ({} = ANY(%s))").format(col), list(f.value)
    # strpos, not LIKE: a '%' or '_' in the value is matched literally, like Polars.
    return sql.SQL("strpos({}, %s) > 0").format(col), f.value


def to_sql(filters: Filters | None) -> tuple[sql.Composable, list[Any]]:
    """A ``WHERE`` body and its parameters for psycopg; ``TRUE`` when there are no filters."""
    groups = normalize(filters)
    if not groups:
        return sql.SQL("TRUE"), []
    params: list[Any] = []
    ors = []
    for group in groups:
        ands = []
        for f in group:
            clause, value = _sql(f)
            ands.append(clause)
            params.append(value)
        ors.append(sql.SQL("({})").format(sql.SQL(" AND ").join(ands)))
    return sql.SQL(" OR ").join(ors), params
