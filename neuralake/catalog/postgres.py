"""A table read from PostgreSQL over a real connection (psycopg 3).

The catalog's filters become a parameterized ``WHERE`` (``psycopg.sql`` identifiers and
``%s`` placeholders): a value such as ``"x' OR 1=1 --"`` is sent as data and can never
change the query. Neuralink's datarepo built filter SQL by string concatenation. Values
are cast to the declared column types first, so PostgreSQL and Polars compare the same
typed values; names (relation, columns) are identifiers, because psycopg would read a
``%`` inside a quoted identifier as a placeholder.

The read is a Polars IO source, so it stays lazy: the query runs at ``collect()``, asks
only for the columns the plan uses, and adds ``LIMIT`` for ``.head(n)``. A ``.filter()``
written later on the LazyFrame is applied by Polars to the rows that arrive; filters
given to ``scan(filters=...)`` are the ones PostgreSQL evaluates.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import polars as pl
from polars.io.plugins import register_io_source
from psycopg import sql

from neuralake.catalog.errors import CatalogError
from neuralake.catalog.filters import Conjunction, Filters, bind, to_sql
from neuralake.catalog.names import check_name
from neuralake.catalog.tables import Table, resolve_settings
from neuralake.settings import Settings


@dataclass(eq=False)
class PostgresTable(Table):
    """``PostgresTable("patients", relation="public.patients", schema={...})``.

    The connection comes from ``dsn`` or ``settings().postgres_dsn``. The schema must be
    declared: the site documents it without opening a connection.
    """

    kind: ClassVar[str] = "postgres"
    relation: str = ""
    dsn: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.declared_columns():
            raise CatalogError(f"PostgresTable {self.name!r} needs a declared schema={{...}}")
        self.relation = self.relation or self.name
        parts = self.relation.split(".")
        if len(parts) > 2:
            raise CatalogError(
                f"PostgresTable {self.name!r}: relation {self.relation!r} has more than "
                "schema.table: write e.g. 'public.patients'"
            )
        for part in parts:
            check_name("relation", part)

    def location(self, settings: Settings | None = None) -> str:
        """``postgresql://host:port/db#relation``, without the password."""
        dsn = self.dsn or resolve_settings(settings).postgres_dsn
        if dsn is None:
            return f"postgresql:(no DSN)#{self.relation}"
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(dsn)
        host, port, db = info.get("host"), info.get("port", 5432), info.get("dbname")
        return f"postgresql://{host}:{port}/{db}#{self.relation}"

    def _dsn(self, settings: Settings) -> str:
        dsn = self.dsn or settings.postgres_dsn
        if dsn is None:
            raise CatalogError(
                f"table {self.name!r} reads PostgreSQL but profile {settings.profile!r} has "
                "no DSN: start the stack (neuralake stack up) or set NEURALAKE_POSTGRES_DSN"
            )
        return dsn

    def query(
        self, filters: Filters | None, columns: list[str], limit: int | None
    ) -> tuple[sql.Composed, list[object]]:
        """The SELECT this table sends, and its parameters (values never enter the text).

        Filter values are cast to the declared column types first, as ``scan`` does.
        """
        declared = {c.name: c.dtype for c in self.declared_columns()}
        where, params = to_sql(bind(filters, declared))
        relation = sql.Identifier(*self.relation.split("."))
        query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
            sql.SQL(", ").join(sql.Identifier(c) for c in columns), relation, where
        )
        if limit is not None:
            query = sql.SQL("{} LIMIT %s").format(query)
            params = [*params, limit]
        return query, params

    def _scan(
        self, settings: Settings, filters: list[Conjunction], as_of: int | None
    ) -> pl.LazyFrame:
        import psycopg

        schema = {c.name: c.dtype for c in self.declared_columns()}
        dsn = self._dsn(settings)

        def rows(
            with_columns: list[str] | None,
            predicate: pl.Expr | None,
            n_rows: int | None,
            batch_size: int | None,
        ) -> Iterator[pl.DataFrame]:
            columns = with_columns or list(schema)
            # A later .filter() runs in Polars, so LIMIT is only safe without one.
            limit = n_rows if predicate is None else None
            query, params = self.query(filters, columns, limit)
            batch_schema = {c: schema[c] for c in columns}
            with psycopg.connect(dsn) as conn, conn.cursor(name=f"scan_{self.name}") as cur:
                cur.execute(query, params)
                while batch := cur.fetchmany(batch_size or 50_000):
                    frame = pl.DataFrame(batch, schema=batch_schema, orient="row")
                    yield frame.filter(predicate) if predicate is not None else frame

        return register_io_source(
            rows, schema=schema, explain_name="postgres", explain_detail=self.relation
        )
