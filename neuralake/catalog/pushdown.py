"""Measure what a query reads from S3: the data files it opens and the bytes it pulls.

::

    frame, reads = measure(lambda s: sessions.scan(filters=[...], settings=s), settings)
    reads.files_opened, reads.bytes_read

``make_frame`` builds the query for the settings it is given. :func:`measure` hands it
settings whose S3 endpoint is a :class:`neuralake.delta.RequestLog` (lesson 01's
pass-through proxy), makes them the default of every catalog table read inside it, and
collects the query once. Every number is a count of requests
that crossed the wire, so it is exact whatever the reader (Polars, delta-rs) decided and
however it logs it: a file the reader skipped was never requested. Counting requests
needs an S3 server over plain http, the stack's; a local warehouse sends none.

Time is not measured here (the proxy adds its own delay): time the same query straight
to S3 with :func:`neuralake.timing.warm_ms`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from neuralake.catalog.errors import CatalogError
from neuralake.catalog.tables import reading_with
from neuralake.delta import RequestLog
from neuralake.settings import Settings


@dataclass(frozen=True)
class Reads:
    """What one query read from S3, counted request by request."""

    rows: int
    files_opened: int  # data files (Parquet) requested at least once
    bytes_read: int  # bytes of data files returned
    log_requests: int  # requests to ``_delta_log/``: opening the table
    requests: int  # every request, those above included

    def __str__(self) -> str:
        return (
            f"{self.rows:,} rows; opened {self.files_opened} data files, read "
            f"{self.bytes_read / 1e6:.2f} MB; {self.requests} requests in all"
        )


def measure(
    make_frame: Callable[[Settings], pl.LazyFrame], settings: Settings
) -> tuple[pl.DataFrame, Reads]:
    """Collect ``make_frame(settings)`` through a request log: its rows, and what it read.

    ``settings`` must point at an S3 server over http (the ``stack`` profile); anything
    else is refused in one line. A query built before (a LazyFrame) cannot be measured:
    its reader already knows where S3 is.
    """
    if isinstance(make_frame, pl.LazyFrame):
        raise CatalogError(
            "measure(make_frame, settings) takes a function that builds the query for the "
            "settings it is given (lambda s: ...), not a LazyFrame built already"
        )
    with RequestLog(settings.storage_options) as log:
        through_log = dataclasses.replace(settings, s3_endpoint=log.endpoint)
        with reading_with(through_log):  # catalog tables read through the log by default too
            frame = make_frame(through_log)
        result = frame.collect()
    read = log.summary()
    if read["requests"] == 0:
        raise CatalogError(
            "the query sent no request through the log, so there is nothing to count: build "
            "it from the settings make_frame is given (pl.scan_delta(uri, storage_options="
            "s.storage_options), table.scan(settings=s))"
        )
    return result, Reads(
        rows=result.height,
        files_opened=read["data files opened"],
        bytes_read=read["data bytes read"],
        log_requests=read["log requests"],
        requests=read["requests"],
    )
