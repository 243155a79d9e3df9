"""Create the data the ``neuro`` catalog describes: Delta tables and a PostgreSQL table.

``seed(settings)`` writes sessions, devices, cursor_events and neural_signals (partitioned
by session) into ``<warehouse>/catalog/`` with the lab's deterministic generator, and
loads the patients into PostgreSQL when the profile has a DSN. Running it again
replaces the data (a new Delta version, the same rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from psycopg import sql

from neuralake import datagen
from neuralake.catalog.examples.neuro import PREFIX
from neuralake.settings import Settings

_PG_TYPES = {pl.Int32: "integer", pl.String: "text"}


@dataclass(frozen=True)
class Seeded:
    """What :func:`seed` wrote."""

    uris: dict[str, str]
    signal_rows: int
    patients_in_postgres: int | None  # None: the profile has no PostgreSQL


def seed(
    settings: Settings,
    rows: int = 1_000_000,
    sessions: int = 4,
    patients: int = 2,
    seed: int = 2,
    load_postgres: bool = True,
) -> Seeded:
    """Write the example tables for ``settings``.

    The default is small: 1,048,576 signal rows (4 sessions), written in about 0.3 s.
    """
    simulation = datagen.Simulation(rows=rows, sessions=sessions, patients=patients, seed=seed)
    uris = datagen.write_tables(
        settings, simulation, files=2 * sessions, partition_by=["session_id"], prefix=PREFIX
    )
    loaded = None
    if settings.postgres_dsn and load_postgres:
        loaded = load_patients(settings.postgres_dsn, simulation.patients_table())
    return Seeded(uris, simulation.signal_rows, loaded)


def _pg_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "timestamptz"
    return _PG_TYPES[type(dtype)]


def load_patients(dsn: str, frame: pl.DataFrame, relation: str = "patients") -> int:
    """Replace PostgreSQL table ``relation`` with ``frame`` (COPY, in one transaction)."""
    import psycopg

    name = sql.Identifier(relation)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(_pg_type(t)))
        for c, t in frame.schema.items()
    )
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(name, columns))
        copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
            name, sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
        )
        with conn.cursor().copy(copy) as writer:
            for row in frame.iter_rows():
                writer.write_row(row)
    return frame.height
