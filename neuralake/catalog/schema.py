"""Schemas: declared in code with column descriptions, or read once from the Delta log.

A declared schema is the contract the site documents. When a Delta table declares
none, the catalog reads it from the table's log the first time it is asked and keeps
it (reading a log costs one LIST plus a few small GETs; doing it per page for 500
tables would make the site slow and dependent on the storage being up).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

import polars as pl
import pyarrow as pa

from neuralake.catalog.errors import CatalogError
from neuralake.catalog.names import check_name


class Column(NamedTuple):
    """A declared column: its Polars type and what it means.

    ``schema={"channel": Column(pl.Int16, "Electrode channel, 0-based.")}``. The type is
    what readers get (``scan()`` checks filters against it and casts their values to
    it); the description is what the site shows.
    """

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


#: What ``schema=`` accepts: a ``pyarrow.Schema`` (as datarepo users write it; a field's
#: ``description`` metadata becomes the column description), a ``pl.Schema``, or a
#: mapping of column name to a Polars type or a :class:`Column`.
SchemaSpec: TypeAlias = (
    pa.Schema | pl.Schema | Mapping[str, pl.DataType | type[pl.DataType] | Column]
)


def columns_from_spec(spec: SchemaSpec | None) -> tuple[ColumnInfo, ...]:
    """Normalize any accepted ``schema=`` into ``ColumnInfo``s (names checked)."""
    if spec is None:
        return ()
    if isinstance(spec, pa.Schema):
        return tuple(_from_arrow_field(field) for field in spec)
    if not isinstance(spec, Mapping | pl.Schema):
        raise CatalogError(
            f"schema is a {type(spec).__name__}: pass a pyarrow.Schema, a pl.Schema or a "
            'dict such as {"id": Column(pl.Int64, "what it means")}'
        )
    out = []
    for name, value in spec.items():
        column = value if isinstance(value, Column) else Column(value)
        dtype = column.dtype() if isinstance(column.dtype, type) else column.dtype
        if not isinstance(dtype, pl.DataType):
            raise CatalogError(
                f"column {name!r} has type {column.dtype!r}: use a Polars type such as pl.Int64"
            )
        out.append(ColumnInfo(check_name("column", name), dtype, column.description))
    return tuple(out)


def _from_arrow_field(field: pa.Field) -> ColumnInfo:
    dtype = pl.Schema(pa.schema([field]))[field.name]
    metadata: dict[Any, Any] = field.metadata or {}
    description = metadata.get(b"description", b"").decode()
    return ColumnInfo(check_name("column", field.name), dtype, description)


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
