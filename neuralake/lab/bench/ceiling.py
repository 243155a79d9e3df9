"""The ceiling: the bytes each TPC-H query needs, read and decoded with no query engine.

For each query, the columns its SQL names (TPC-H's column names are unique across its
tables, so a name says its table), from every current file of those tables' Delta logs:

- **read** (the ceiling): ``pyarrow.dataset`` reads exactly those columns, all row
  groups, with pre-buffering (coalesced byte ranges, ``IO_THREADS`` S3 requests in
  flight) and decoding on every core: fetch and decode, nothing else. No query engine
  can answer without at least that work (unless statistics let it skip row groups:
  TPC-H's generated tables give little to skip), so an engine's time over this is
  what its query costs beyond reading.
- **fetch**: the same column chunks' byte ranges fetched alone by ``IO_THREADS``
  threads and thrown away: the storage's share of the read.

Both are best of ``repeats``. The Delta logs and the Parquet footers are read once
beforehand, outside the times, as the engines read the logs when they register the
tables (DuckDB's ``delta_scan`` reads its log in every query, and every engine reads
footers as part of a query, so the ceiling is a little generous to itself).
An engine's **fraction of the ceiling** is ceiling time / engine time: 1.0 means the
query took no longer than reading its data.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyarrow import fs

from neuralake.lab.bench.engines import delta_dataset
from neuralake.lab.bench.queries import Query
from neuralake.settings import Settings

IO_THREADS = 16  # S3 requests in flight: more did not fetch faster here (8 -> 16 -> 32)


class _Table:
    """One Delta table's current files, their filesystem, footers and column names."""

    def __init__(self, uri: str, settings: Settings) -> None:
        dataset = delta_dataset(uri, settings)
        self.filesystem: fs.FileSystem = dataset.filesystem
        self.files: list[str] = list(dataset.files)
        self.footers = []
        for path in self.files:
            with self.filesystem.open_input_file(path) as handle:
                self.footers.append(pq.ParquetFile(handle).metadata)
        self.columns: list[str] = list(dataset.schema.names)
        scan = ds.ParquetFragmentScanOptions(pre_buffer=True)
        fmt = ds.ParquetFileFormat(default_fragment_scan_options=scan)
        self.dataset = ds.dataset(self.files, filesystem=self.filesystem, format=fmt)

    def ranges(self, columns: set[str]) -> list[tuple[str, int, int]]:
        """(file, offset, length) of every chunk of ``columns``, from the footers."""
        found = []
        for path, meta in zip(self.files, self.footers, strict=True):
            for group in range(meta.num_row_groups):
                row_group = meta.row_group(group)
                for i in range(row_group.num_columns):
                    chunk = row_group.column(i)
                    if chunk.path_in_schema in columns:
                        start = chunk.data_page_offset
                        if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                            start = min(start, chunk.dictionary_page_offset)
                        found.append((path, start, chunk.total_compressed_size))
        return found

    def read(self, columns: list[str]) -> pa.Table:
        return self.dataset.to_table(columns=columns, use_threads=True)


def columns_named(sql: str, tables: dict[str, _Table]) -> dict[str, list[str]]:
    """The columns of each table that ``sql`` names (tables it names none of are left out)."""
    words = set(re.findall(r"[a-z_][a-z0-9_]*", sql.lower()))
    named = {name: [c for c in t.columns if c in words] for name, t in tables.items()}
    return {name: cols for name, cols in named.items() if cols}


def _best(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def _all(pool: ThreadPoolExecutor, fetch: Callable[[Any], int], items: list) -> int:
    return sum(pool.map(fetch, items))


def measure(
    settings: Settings, uris: dict[str, str], queries: Sequence[Query], repeats: int = 3
) -> dict:
    """Read and fetch times of each query's columns; the document's ``ceiling`` section."""
    load_before = round(os.getloadavg()[0], 2)
    pa.set_io_thread_count(IO_THREADS)
    tables = {name: _Table(uri, settings) for name, uri in uris.items()}

    def fetch(item: tuple[str, tuple[str, int, int]]) -> int:
        name, (path, offset, length) = item
        with tables[name].filesystem.open_input_file(path) as handle:
            return len(handle.read_at(length, offset))

    def read(needed: dict[str, list[str]]) -> None:
        for name, cols in needed.items():
            tables[name].read(cols)

    per_query: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(IO_THREADS) as pool:
        for query in queries:
            needed = columns_named(query.sql, tables)
            ranges = [(n, r) for n, cols in needed.items() for r in tables[n].ranges(set(cols))]
            per_query[query.name] = {
                "columns": needed,
                "bytes": sum(pool.map(fetch, ranges)),
                "read_s": round(_best(partial(read, needed), repeats), 4),
                "fetch_s": round(_best(partial(_all, pool, fetch, ranges), repeats), 4),
            }
    return {
        "what": "each query's named columns, all row groups, read by pyarrow.dataset "
        f"(pre-buffered, {IO_THREADS} S3 requests in flight, decoding on every core); "
        f"fetch: the same byte ranges alone, {IO_THREADS} threads; best of {repeats}",
        "io_threads": IO_THREADS,
        "repeats": repeats,
        "queries": per_query,
        "read_s": round(sum(q["read_s"] for q in per_query.values()), 3),
        "fetch_s": round(sum(q["fetch_s"] for q in per_query.values()), 3),
        "bytes": sum(q["bytes"] for q in per_query.values()),
        "load_average": [load_before, round(os.getloadavg()[0], 2)],
    }


def fractions(ceiling: dict, results: list[dict]) -> dict[str, float]:
    """Each engine's total over the queries the ceiling has: ceiling time / engine time."""
    per_query = ceiling["queries"]
    totals: dict[str, float] = {}
    for row in results:
        if row["query"] in per_query:
            totals[row["engine"]] = totals.get(row["engine"], 0.0) + row["median_s"]
    reads = sum(q["read_s"] for q in per_query.values())
    return {engine: round(reads / total, 3) for engine, total in totals.items() if total > 0}
