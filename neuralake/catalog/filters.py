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
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import polars as pl
from psycopg import sql

from neuralake.catalog.errors import CatalogError

OPS = ("=", "!=", "<", "<=", ">", ">=", "in", "not in", "contains")


class Filter(NamedTuple):
    """One condition: ``column op value``, e.g. ``Filter("channel", "in", [0, 1])``."""

    column: str
    op: str
    value: Any


Conjunction = list[Filter]
Filters = Sequence[Filter] | Sequence[Sequence[Filter]]


def normalize(filters: Filters | None) -> list[Conjunction]:
    """Return filters as OR-of-ANDs (``[[...], [...]]``), validating every filter."""
    if not filters:
        return []
    if all(isinstance(f, Filter) for f in filters):
        groups = [list(filters)]
    elif all(isinstance(f, list | tuple) and not isinstance(f, Filter) for f in filters):
        groups = [list(group) for group in filters]
    else:
        raise CatalogError(
            "filters must be a list of Filter (AND) or a list of lists of Filter (OR of ANDs)"
        )
    for group in groups:
        if not group:
            raise CatalogError("an empty AND-group in filters matches everything: remove it")
        for f in group:
            _validate(f)
    return groups


def _validate(f: Any) -> None:
    if not isinstance(f, Filter):
        raise CatalogError(f"{f!r} is not a Filter: write Filter(column, op, value)")
    if f.op not in OPS:
        raise CatalogError(f"unknown filter op {f.op!r} in {f}: use one of {', '.join(OPS)}")
    if f.op in ("in", "not in") and not isinstance(f.value, list | tuple | set | frozenset):
        raise CatalogError(f"{f} needs a list value, e.g. Filter({f.column!r}, {f.op!r}, [1, 2])")
    if f.op == "contains" and not isinstance(f.value, str):
        raise CatalogError(f"{f} needs a string value: 'contains' matches text")


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
    raise AssertionError(f.op)  # unreachable: _validate checked the op


def to_expr(filters: Filters | None) -> pl.Expr | None:
    """The Polars expression for ``filters``, or ``None`` when there are none."""
    groups = normalize(filters)
    if not groups:
        return None
    return pl.any_horizontal(*(pl.all_horizontal(*(_expr(f) for f in g)) for g in groups))


def referenced_columns(filters: Filters | None) -> set[str]:
    """Every column a filter mentions (to check them against a table's schema)."""
    return {f.column for group in normalize(filters) for f in group}


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
