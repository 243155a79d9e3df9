"""Do two engines read the same table? Row count, schema and an order-free checksum.

Spark hands its rows over as Arrow (``DataFrame.toArrow()``); Polars, DataFusion and ROAPI
do too. :func:`checksum` hashes every row over every column with Polars and adds the
hashes (mod 2**64), so it does not depend on row order, and any changed value, type,
null or timezone changes it. Floats are compared bit for bit: the engines read the same
Parquet values, so nothing may drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
import polars.selectors as cs

if TYPE_CHECKING:
    from pyspark.sql import DataFrame as SparkFrame


@dataclass(frozen=True)
class Fingerprint:
    rows: int
    schema: dict[str, str]
    checksum: int


def checksum(frame: pl.DataFrame) -> int:
    """The sum of the frame's row hashes, modulo 2**64 (0 for an empty frame)."""
    if frame.height == 0:
        return 0
    return int(frame.hash_rows(seed=0).cast(pl.UInt64).sum()) % 2**64


def fingerprint(
    data: Any, columns: list[str] | None = None, decimals: int | None = None
) -> Fingerprint:
    """A fingerprint of an Arrow table (or anything ``pl.from_arrow`` takes, or a frame).

    ``decimals`` rounds every float column first: for values two engines *computed*
    (sums and means add floats in a different order, so the last bits differ), not for
    values both read from the same Parquet files.
    """
    frame = data if isinstance(data, pl.DataFrame) else pl.from_arrow(data)
    if isinstance(frame, pl.Series):  # a single Arrow array: one column
        frame = frame.to_frame()
    if columns is not None:
        frame = frame.select(columns)
    if decimals is not None:
        frame = frame.with_columns(cs.float().round(decimals))
    return Fingerprint(
        frame.height, {name: str(dtype) for name, dtype in frame.schema.items()}, checksum(frame)
    )


def spark_fingerprint(
    spark_frame: SparkFrame, columns: list[str] | None = None, decimals: int | None = None
) -> Fingerprint:
    """Spark's rows, moved to the driver as Arrow (fine for lab-sized tables)."""
    return fingerprint(spark_frame.toArrow(), columns, decimals)
