"""The benchmark's questions: each one an SQL text and a Polars LazyFrame plan.

A :class:`Query` carries both. The SQL engines (DataFusion, DuckDB, Spark) run
``query.sql``; Polars runs ``query.polars(tables)`` on ``scan_delta`` LazyFrames.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from neuralake.lab.bench.queries import polars_tpch, sql

PolarsPlan = Callable[[Mapping[str, pl.LazyFrame]], pl.LazyFrame]


@dataclass(frozen=True)
class Query:
    """One benchmark question, asked the same way of every engine."""

    name: str
    sql: str
    polars: PolarsPlan


def tpch(scale: float, numbers: list[int] | None = None) -> list[Query]:
    """TPC-H queries ``numbers`` (default all 22) with the parameters for ``scale``."""
    chosen = numbers or sorted(sql.QUERIES)
    return [Query(f"q{n:02d}", sql.sql(n, scale), polars_tpch.plan(n, scale)) for n in chosen]
