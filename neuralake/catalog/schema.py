"""Schemas: declared in code with column descriptions, or read once from the Delta log.

A declared schema is the contract the site documents. When a Delta table declares
none, the catalog reads it from the table's log the first time it is asked and keeps
it (reading a log costs one LIST plus a few small GETs; doing it per page for 500
tables would make the site slow and dependent on the storage being up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import polars as pl


class Column(NamedTuple):
    """A declared column: its Polars type and what it means, e.g. ``Column(pl.Int64, "…")``."""

    dtype: pl.DataType | type[pl.DataType]
    description: str = ""


@dataclass(frozen=True)
class ColumnInfo:
    """A column as the catalog documents it."""

    name: str
    dtype: pl.DataType
    description: str = ""

    @property
    def type_name(self) -> str:
        """The Polars type as text, e.g. ``Int64`` or ``Datetime(time_unit='us', ...)``."""
        return str(self.dtype)


SchemaSpec = Mapping[str, pl.DataType | type[pl.DataType] | Column]


def columns_from_spec(spec: SchemaSpec | None) -> tuple[ColumnInfo, ...]:
    """Normalize ``{"a": pl.Int64, "b": Column(pl.String, "…")}`` into ``ColumnInfo``s."""
    if not spec:
        return ()
    out = []
    for name, value in spec.items():
        column = value if isinstance(value, Column) else Column(value)
        dtype = column.dtype() if isinstance(column.dtype, type) else column.dtype
        out.append(ColumnInfo(name, dtype, column.description))
    return tuple(out)


def polars_schema(columns: tuple[ColumnInfo, ...]) -> pl.Schema:
    """The ``pl.Schema`` of documented columns."""
    return pl.Schema({c.name: c.dtype for c in columns})


_delta_schemas: dict[tuple[str, tuple[tuple[str, str], ...]], pl.Schema] = {}


def delta_log_schema(uri: str, storage_options: Mapping[str, str]) -> pl.Schema:
    """The schema stored in a Delta table's log, read once per process and cached."""
    key = (uri, tuple(sorted(storage_options.items())))
    if key not in _delta_schemas:
        scan = pl.scan_delta(uri, storage_options=dict(storage_options) or None)
        _delta_schemas[key] = scan.collect_schema()  # reads the log only, no data files
    return _delta_schemas[key]
