"""Code as a catalog: tables declared in Python modules, browsed, queried and served.

Declare a table (a module is a database, each declaration a table)::

    import polars as pl
    from neuralake.catalog import Column, DeltalakeTable, Filter

    sessions = DeltalakeTable(
        "sessions",
        description="One row per recording session.",
        schema={"session_id": Column(pl.Int32, "Unique id."), "task": Column(pl.String, "...")},
        docs_filters=[Filter("task", "=", "cursor_control")],
    )

Read it lazily, with filters pushed down to the files (a list is AND, a list of lists is
OR of ANDs; values are cast to the column types)::

    sessions.scan(filters=[Filter("task", "=", "rest")], columns=["session_id"]).collect()

Gather modules into a catalog, and read any table at an older version (time travel)::

    from neuralake.catalog import Catalog, ModuleDatabase
    from neuralake.catalog.examples import neuro

    catalog = Catalog({"neuro": ModuleDatabase(neuro)})
    db = catalog.db("neuro")
    db.table("sessions", filters=[Filter("task", "=", "cursor_control")]).collect()
    db.get("sessions").history()                  # [DeltaVersion(version, committed_at), ...]
    db.table("sessions", version=0)               # or timestamp="2026-11-01T10:00:00Z"

The pieces, one module each: ``filters`` (Filter -> Polars expression / safe SQL),
``names`` (identifier rules), ``schema`` (declared columns), ``tables`` (Delta,
Parquet, CSV), ``functions`` (@table, materialized views), ``postgres`` (PostgreSQL over
psycopg), ``database`` and ``catalog``, ``quality`` (checks and reports), ``lineage``
(graph and drawing), ``export`` (the JSON contract), ``site`` and ``snippets`` (static
HTML), ``roapi`` (ROAPI YAML), ``pushdown`` (measure what a scan reads), ``loader``
(a module or ``.py`` file as a catalog), ``cli`` (``site``, ``roapi``, ``export``,
``check``, ``refresh`` commands).
"""

from neuralake.catalog.catalog import Catalog
from neuralake.catalog.database import Database, ModuleDatabase
from neuralake.catalog.errors import CatalogError, UnknownNameError
from neuralake.catalog.filters import Filter
from neuralake.catalog.functions import FunctionTable, table
from neuralake.catalog.loader import load_catalog
from neuralake.catalog.postgres import PostgresTable
from neuralake.catalog.quality import (
    AcceptedValues,
    Freshness,
    NotNull,
    QualityReport,
    Range,
    Unique,
)
from neuralake.catalog.schema import Column
from neuralake.catalog.tables import (
    CsvTable,
    DeltalakeTable,
    DeltaVersion,
    ParquetTable,
    Table,
    _deprecated_delta_table,
)

__all__ = [
    "AcceptedValues",
    "Catalog",
    "CatalogError",
    "Column",
    "CsvTable",
    "Database",
    "DeltaVersion",
    "DeltalakeTable",
    "Filter",
    "Freshness",
    "FunctionTable",
    "ModuleDatabase",
    "NotNull",
    "ParquetTable",
    "PostgresTable",
    "QualityReport",
    "Range",
    "Table",
    "Unique",
    "UnknownNameError",
    "load_catalog",
    "table",
]


def __getattr__(name: str) -> object:
    """``DeltaTable``, the old name of :class:`DeltalakeTable`, still works but warns."""
    if name == "DeltaTable":
        return _deprecated_delta_table()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
