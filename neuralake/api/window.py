"""The serving window: the recent rows of a live Delta table, kept as one small Parquet file.

ROAPI 0.12.7 reads a Delta table in one of two ways, and neither is a fresh hot path on
a table the writer commits to every second: a **provider** table fetches every surviving
file's Parquet footer and page index from S3 on every query (no metadata cache), and a
**memory** table re-reads the whole table at every reload (and cannot hold a partitioned
one). A dashboard asks about the last minutes, not about the whole history, so the hot
path serves a **window**: the rows of the last ``seconds``, unpartitioned, in a single
Parquet object that :class:`Window` rewrites after each new version of the live table.
ROAPI loads it as a memory table and reloads it every second: one GET of a few MB, no
footer per query, no statistics needed.

:meth:`Window.refresh` is incremental: it reads only the files the live table gained
since the last refresh (whose newest row is inside the window), keeps rows newer than
the last Kafka offset it holds per partition (so a compaction's rewritten files, which
repeat old rows, add nothing), drops rows older than the window and writes the object
again (an S3 PUT replaces it whole: a reader sees the old window or the new one).

The table must carry Kafka coordinates (``kafka_partition``, ``kafka_offset``, offsets
rising per partition as the writer commits them) and an arrival time column: the
writer's bronze table does. ``python -m neuralake.api.window --live URI --out URI``
runs the loop (the lab's ``serve()`` starts it for tables declared with
``roapi_window_s``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import polars as pl
from deltalake import DeltaTable

import neuralake

#: Rows per Parquet row group of the window file (ROAPI loads it into memory; this only
#: bounds the reader's work per group).
ROW_GROUP_ROWS = 262_144


def window_uri(table_location: str) -> str:
    """Where a table's serving window lives: ``{table}_recent/recent.parquet`` beside it."""
    return f"{table_location.rstrip('/')}_recent/recent.parquet"


@dataclass(frozen=True)
class Refresh:
    """What one refresh did."""

    version: int  # live table version the window now reflects
    rows: int  # rows in the window
    files_read: int  # live-table files read for this refresh
    newest: datetime | None  # newest arrival time in the window
    seconds: float  # time the refresh took
    written: bool  # False when the live table had no new version


class Window:
    """The last ``seconds`` of ``live_uri``, rewritten to ``out_uri`` by :meth:`refresh`."""

    def __init__(
        self,
        live_uri: str,
        out_uri: str,
        seconds: float,
        storage_options: dict[str, str],
        time_column: str = "kafka_timestamp",
    ) -> None:
        if seconds <= 0:
            raise ValueError(f"window of {seconds} s: give a positive number of seconds")
        self.live_uri, self.out_uri, self.seconds = live_uri, out_uri, seconds
        self.options, self.time_column = storage_options, time_column
        self.log = DeltaTable(live_uri, storage_options=storage_options)
        self.partitions = self.log.metadata().partition_columns
        self.schema = pl.DataFrame(self.log.schema().to_arrow().empty_table()).schema
        self.frame = pl.DataFrame(schema=self.schema)
        self.seen: set[str] = set()
        self.version = -1

    def _cutoff(self) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=self.seconds)

    def _new_files(self, cutoff: datetime) -> list[dict]:
        """Add actions of files not seen before whose newest row is inside the window."""
        actions = pl.DataFrame(self.log.get_add_actions(flatten=True))
        self.seen, before = set(actions["path"].to_list()), self.seen
        fresh = actions.filter(~pl.col("path").is_in(list(before)))
        newest = f"max.{self.time_column}"
        if newest in fresh.columns:  # no statistics: read the file
            fresh = fresh.filter(pl.col(newest).is_null() | (pl.col(newest) >= cutoff))
        return fresh.to_dicts()

    def _read(self, action: dict) -> pl.DataFrame:
        uri = f"{self.live_uri.rstrip('/')}/{action['path']}"
        frame = pl.read_parquet(uri, storage_options=self.options)
        parts = [pl.lit(action[f"partition.{p}"]).alias(p) for p in self.partitions]
        return frame.with_columns(parts).cast(self.schema).select(list(self.schema))

    def refresh(self) -> Refresh:
        """Bring the window up to the live table's latest version and write it."""
        started = time.perf_counter()
        self.log.update_incremental()
        version = self.log.version()
        if version == self.version:
            return self._report(started, files=0, written=False)
        cutoff = self._cutoff()
        new = [self._read(a) for a in self._new_files(cutoff)]
        if new:
            rows = pl.concat(new)
            if self.frame.height:  # only offsets past what the window holds, per partition
                last = self.frame.group_by("kafka_partition").agg(pl.col("kafka_offset").max())
                rows = rows.join(last, on="kafka_partition", how="left", suffix="_last").filter(
                    pl.col("kafka_offset_last").is_null()
                    | (pl.col("kafka_offset") > pl.col("kafka_offset_last"))
                )
                rows = rows.drop("kafka_offset_last")
            self.frame = pl.concat([self.frame, rows])
        self.frame = self.frame.filter(pl.col(self.time_column) >= cutoff)
        self.frame.write_parquet(
            self.out_uri, storage_options=self.options, row_group_size=ROW_GROUP_ROWS
        )
        self.version = version
        return self._report(started, files=len(new), written=True)

    def _report(self, started: float, files: int, written: bool) -> Refresh:
        newest = self.frame[self.time_column].max() if self.frame.height else None
        return Refresh(
            version=self.version,
            rows=self.frame.height,
            files_read=files,
            newest=newest,  # type: ignore[arg-type]
            seconds=round(time.perf_counter() - started, 3),
            written=written,
        )


def follow(window: Window, every_s: float = 1.0) -> None:
    """Refresh ``window`` every ``every_s`` seconds, forever; one line per refresh."""
    while True:
        started = time.monotonic()
        r = window.refresh()
        if r.written:
            print(
                f"version {r.version}: {r.rows} rows, {r.files_read} files read, "
                f"{r.seconds * 1000:.0f} ms",
                flush=True,
            )
        time.sleep(max(0.0, every_s - (time.monotonic() - started)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", required=True, help="URI of the live Delta table")
    parser.add_argument("--out", required=True, help="URI of the window's Parquet object")
    parser.add_argument("--seconds", type=float, default=60.0, help="the window's length")
    parser.add_argument("--every", type=float, default=1.0, help="seconds between refreshes")
    args = parser.parse_args()
    s = neuralake.settings()
    follow(Window(args.live, args.out, args.seconds, s.storage_options), args.every)


if __name__ == "__main__":
    main()
