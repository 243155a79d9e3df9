"""Every engine's answer is checked against the others before any time is reported.

Engines return rows in different orders (ties, parallel aggregation) and compute sums
of doubles in different orders, so two answers are *the same* when, after sorting the
rows, every column agrees: exactly for integers, strings and dates, within a relative
tolerance for floats. Columns are compared by position (engines name computed columns
differently), and their count must match.
"""

from __future__ import annotations

from typing import cast

import polars as pl

from neuralake.errors import NeuralakeError

REL_TOL = 1e-6  # sums over millions of doubles agree to ~1e-12; leave room for averages
ABS_TOL = 1e-6


class MismatchError(NeuralakeError, AssertionError):
    """Two engines gave different answers to the same query."""


def normalize(frame: pl.DataFrame) -> pl.DataFrame:
    """Positional names; Float64, Int64, UTC microseconds; rows sorted on every column.

    Floats are sorted on their value rounded to cents, so that ``0.30000000000000004``
    and ``0.3`` from two engines land on the same row.
    """
    frame = frame.rename({c: f"c{i}" for i, c in enumerate(frame.columns)})
    frame = frame.with_columns(
        pl.col(pl.Decimal, pl.Float32).cast(pl.Float64),
        pl.col(pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32).cast(pl.Int64),
        pl.col(pl.String, pl.Categorical).cast(pl.String),
    )
    frame = frame.with_columns(
        _utc_micros(frame[c]).alias(c) for c, t in frame.schema.items() if t == pl.Datetime
    )
    keys = [
        pl.col(c).round(2) if dtype == pl.Float64 else pl.col(c)
        for c, dtype in frame.schema.items()
    ]
    return frame.sort(keys, nulls_last=True) if frame.width else frame


def _utc_micros(series: pl.Series) -> pl.Series:
    """Timestamps in one type: microseconds, UTC (naive ones are taken as UTC)."""
    series = series.dt.cast_time_unit("us")
    if cast(pl.Datetime, series.dtype).time_zone is None:
        return series.dt.replace_time_zone("UTC")
    return series.dt.convert_time_zone("UTC")


def _differences(expected: pl.DataFrame, actual: pl.DataFrame) -> str | None:
    if expected.shape != actual.shape:
        return f"shape {actual.shape} instead of {expected.shape}"
    for name in expected.columns:
        want, got = expected[name], actual[name]
        if want.dtype.is_float() or got.dtype.is_float():
            want, got = want.cast(pl.Float64), got.cast(pl.Float64)
            close = (want - got).abs() <= ABS_TOL + REL_TOL * want.abs()
            equal = close | (want.is_null() & got.is_null())
        else:
            if want.dtype != got.dtype:
                return f"column {name} is {got.dtype} instead of {want.dtype}"
            equal = want.eq_missing(got)
        if not equal.all():
            row = equal.arg_min() or 0  # a False exists, so never None
            return f"column {name} row {row}: {got[row]!r} instead of {want[row]!r}"
    return None


def check(query: str, answers: dict[str, pl.DataFrame]) -> None:
    """Raise :class:`MismatchError` naming the query and engines unless all answers agree.

    The first engine's answer is the reference; each other engine is compared with it.
    """
    if len(answers) < 2:
        return
    (reference, expected), *others = ((e, normalize(f)) for e, f in answers.items())
    for engine, actual in others:
        problem = _differences(expected, actual)
        if problem:
            raise MismatchError(f"{query}: {engine} disagrees with {reference}: {problem}")
