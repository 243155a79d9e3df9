"""Code as a catalog: tables declared in Python modules, browsed, queried and served.

::

    from neuralake.catalog import Catalog, ModuleDatabase, Filter
    from neuralake.catalog.examples import neuro

    catalog = Catalog({"neuro": ModuleDatabase(neuro)})
    catalog.db("neuro").table("sessions", filters=[Filter("task", "=", "cursor")]).collect()

The pieces, one module each: ``filters`` (Filter -> Polars expression / safe SQL),
``tables`` (Delta, Parquet, CSV), ``functions`` (@table, materialized views),
``postgres`` (PostgreSQL over psycopg), ``database`` and ``catalog``, ``quality``
(checks and reports), ``lineage`` (graph and drawing), ``export`` (the JSON contract),
``site`` and ``snippets`` (static HTML), ``roapi`` (ROAPI YAML), ``pushdown`` (measure
what a scan reads), ``cli`` (``site``, ``roapi``, ``export``, ``check`` commands).
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
from neuralake.catalog.tables import CsvTable, DeltaTable, ParquetTable, Table

__all__ = [
    "AcceptedValues",
    "Catalog",
    "CatalogError",
    "Column",
    "CsvTable",
    "Database",
    "DeltaTable",
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
