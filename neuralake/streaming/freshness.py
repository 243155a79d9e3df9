"""Freshness as a reader sees it: how long after Kafka got a message can a query read it?

The writer's own gauge (``neuralake_writer_freshness_seconds``) stops at its commit. A
reader also waits for its next poll and for the new files. So this module polls the
table the way a dashboard would, and for every row that becomes visible records::

    freshness = seen_at - kafka_timestamp

where ``seen_at`` is when the poll first saw the version holding the row. Only new
versions are read, and only their new files: the commit files in ``_delta_log/`` list
exactly which data files each version added (``add`` actions with ``dataChange``;
compaction's rewrites have ``dataChange: false`` and are skipped, they hold old rows),
and only the ``kafka_timestamp`` column of those files is fetched.

The polling interval adds up to one interval to every measurement; it is reported with
the results so the number can be read honestly.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import unquote

import polars as pl
from deltalake import DeltaTable

from neuralake.delta import open_table, read_commit

RESULT_SCHEMA = {
    "version": pl.Int64(),
    "seen_at": pl.Datetime("us", "UTC"),
    "kafka_timestamp": pl.Datetime("us", "UTC"),
    "freshness_s": pl.Float64(),
}


def measure(
    uri: str,
    storage_options: dict[str, str] | None = None,
    *,
    seconds: float,
    poll_s: float = 0.1,
    since_version: int | None = None,
    until_rows: int | None = None,
) -> pl.DataFrame:
    """Poll the table at ``uri`` for ``seconds``; one row per newly visible Kafka message.

    Starts after the current version (or ``since_version``): rows already there when
    the measurement starts are not counted. Stops early once ``until_rows`` rows were seen.
    """
    table = open_table(uri, storage_options)
    last = table.version() if since_version is None else since_version
    frames = []
    seen = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (until_rows is None or seen < until_rows):
        table.update_incremental()
        seen_at = datetime.now(UTC)
        for version in range(last + 1, table.version() + 1):
            frames.append(_new_rows(table, uri, version, seen_at, storage_options))
            seen += frames[-1].height
        last = table.version()
        time.sleep(poll_s)
    if not frames:
        return pl.DataFrame(schema=RESULT_SCHEMA)
    return pl.concat(frames).select(RESULT_SCHEMA.keys())


def summary(freshness: pl.DataFrame) -> dict[str, float | None]:
    """Rows seen and freshness percentiles in seconds: p50, p90, p99, max (None without rows)."""
    column = freshness.get_column("freshness_s")
    if column.is_empty():
        return {"rows": 0, "p50_s": None, "p90_s": None, "p99_s": None, "max_s": None}
    quantiles = {f"p{q}_s": column.quantile(q / 100) for q in (50, 90, 99)}
    worst = column.max()
    assert isinstance(worst, float)  # a Float64 column with rows
    return {
        "rows": column.len(),
        **{
            name: round(value, 3) if value is not None else None
            for name, value in quantiles.items()
        },
        "max_s": round(worst, 3),
    }


def _new_rows(
    table: DeltaTable,
    uri: str,
    version: int,
    seen_at: datetime,
    storage_options: dict[str, str] | None,
) -> pl.DataFrame:
    """The ``kafka_timestamp`` of every row that version ``version`` added."""
    added = [
        action["add"]["path"]
        for action in read_commit(uri, version, storage_options)
        if "add" in action and action["add"].get("dataChange", True)
    ]
    if not added:
        return pl.DataFrame(schema=RESULT_SCHEMA)
    files = [f"{uri.rstrip('/')}/{unquote(path)}" for path in added]
    stamps = pl.read_parquet(files, columns=["kafka_timestamp"], storage_options=storage_options)
    return stamps.with_columns(
        version=pl.lit(version, pl.Int64),
        seen_at=pl.lit(seen_at, RESULT_SCHEMA["seen_at"]),
    ).with_columns(
        freshness_s=(pl.col("seen_at") - pl.col("kafka_timestamp")).dt.total_microseconds() / 1e6
    )
