"""Can a layout bring ROAPI's provider under 100 ms p99 on the whole 10M-row table?

Run: ``.venv/bin/python benchmarks/api_whole_table.py [--rows 10000000] [--queries 10]
[--out docs/benchmarks/api_latency_whole_table.json]`` with the stack up. It

1. fills a bronze table with ``--rows`` rows of history as ``benchmarks/api_latency.py``
   does (chunks of 1M rows, one commit each, partitioned by ``date``);
2. in three layouts, each its own table, written by delta-rs (ROAPI untouched):

   - ``appended``: the 1M-row commits as they are (delta-rs's default row groups);
   - ``compacted``: the same, then ``optimize.compact()`` at its defaults, as the
     writer's compactor leaves history (a few large files: the state
     ``api_latency.py``'s whole-table questions meet);
   - ``point_sized``: the same 1M-row files in append (Kafka offset) order, written
     with row groups of ``--row-group-rows`` rows and pages of ``--page-rows`` rows:
     the layout a compaction policy "sized for point lookups" would leave;

3. serves them from one private ROAPI (provider mode, as the catalog serves the
   live table) and sends each ``--queries`` whole-table point, filter and aggregate
   queries (:data:`neuralake.api.latency.QUERIES`), one at a time;
4. records where one query of each kind spent its time (``EXPLAIN ANALYZE``: files
   opened and pruned, row groups, bytes, Parquet footer and page-index load, and the
   scan's wall time) beside its latency.

Prints one JSON object, with the load average (1 min) beside every phase. The target
(issue 16): p99 < 100 ms per query kind. No writer runs here: this isolates the layout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable, WriterProperties, write_deltalake

import neuralake
from neuralake.api import explain, latency
from neuralake.api.client import RoapiClient
from neuralake.api.sample import bronze_rows
from neuralake.catalog.roapi import RELOAD_INTERVAL_S
from neuralake.delta import drop_table
from neuralake.lab.api.server import delta_entry, roapi
from neuralake.lab.bench.targets.api_latency import TARGETS
from neuralake.streaming.schemas import PARTITION_BY

CHUNK = 1_000_000
HISTORY_PARTITION = 100  # as api_latency.py: the filled rows' Kafka partition
#: DataFusion's scan timers (summed over the scan's threads): time to open files, and
#: the scan's whole wall time
_OPENING = re.compile(r"time_elapsed_opening=([0-9.]+)(ns|µs|us|ms|s)\b")
_SCANNING = re.compile(r"time_elapsed_scanning_total=([0-9.]+)(ns|µs|us|ms|s)\b")
_TO_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def load() -> float:
    return round(os.getloadavg()[0], 2)


def fill(uri: str, rows: int, options: dict, properties: WriterProperties | None = None) -> None:
    """``rows`` rows of history, a day ago, in chunks of 1M (one commit each)."""
    start = datetime.now(UTC) - timedelta(days=1)
    for i, first in enumerate(range(0, rows, CHUNK)):
        chunk = bronze_rows(min(CHUNK, rows - first), seed=i, start=start)
        chunk = chunk.with_columns(
            pl.col("kafka_offset") + first, pl.lit(HISTORY_PARTITION).alias("kafka_partition")
        ).cast({"kafka_partition": pl.Int32})
        write_deltalake(
            uri,
            chunk.to_arrow(),
            mode="append",
            partition_by=PARTITION_BY,
            storage_options=options,
            writer_properties=properties,
        )


def timer_ms(pattern: re.Pattern[str], plan_text: str) -> float:
    return round(sum(float(v) * _TO_MS[u] for v, u in pattern.findall(plan_text)), 1)


def files_of(uri: str, options: dict) -> dict[str, float]:
    table = DeltaTable(uri, storage_options=options)
    sizes = pl.DataFrame(table.get_add_actions(flatten=True))["size_bytes"]
    return {"files": len(sizes), "mb": round(sizes.sum() / 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=TARGETS["rows"])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--row-group-rows", type=int, default=65_536)
    parser.add_argument("--page-rows", type=int, default=8_192)
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()

    s = neuralake.settings("stack")
    opts = s.storage_options
    run = uuid.uuid4().hex[:8]
    # two tables: the history, measured as appended and again after compacting it in
    # place, and the point-sized copy
    uri = {name: s.table_uri(f"bench_whole_{run}_{name}") for name in ("history", "point_sized")}
    started = time.perf_counter()
    loads = {"start": load()}
    folder = Path(tempfile.mkdtemp(prefix="api_whole_table_"))
    report: dict = {"rows": args.rows, "layouts": {}}
    try:
        point_sized = WriterProperties(
            max_row_group_size=args.row_group_rows, data_page_row_count_limit=args.page_rows
        )
        build_s = {}
        for name, properties in (("history", None), ("point_sized", point_sized)):
            at = time.perf_counter()
            fill(uri[name], args.rows, opts, properties)
            build_s[name] = round(time.perf_counter() - at, 1)
        loads["built"] = load()
        entries = [delta_entry(name, table_uri) for name, table_uri in uri.items()]
        with (
            roapi(entries, s, folder, timeout=300) as listeners,
            RoapiClient(http=listeners.http, timeout=120) as client,
        ):
            floor = latency.measure(client.sql, ["SELECT 1"] * 50)
            report["select_1"] = {**latency.percentiles(floor), "load_1m": load()}

            def measure(layout: str, table: str, built_s: float) -> None:
                at_start = load()
                result: dict = {"table": table, **files_of(uri[table], opts), "build_s": built_s}
                for kind in latency.QUERIES:
                    sql = latency.queries(kind, table, args.rows, args.queries + 1, seed=1)
                    sql = [
                        q.replace("kafka_partition = 0", f"kafka_partition = {HISTORY_PARTITION}")
                        for q in sql
                    ]
                    timed = latency.percentiles(latency.measure(client.sql, sql[1:]))
                    plan = explain.plan(client, sql[0])
                    scan = explain.scan_metrics(plan)
                    result[kind] = {
                        **timed,
                        "files_scanned": int(scan["files_scanned"]),
                        "files_pruned": int(scan["files_pruned"]),
                        "row_groups_read": int(scan["row_groups_matched_statistics"]),
                        "row_groups_pruned": int(scan["row_groups_pruned_statistics"]),
                        "mb_scanned": round(scan["bytes_scanned"] / 1e6, 2),
                        "metadata_load_ms": scan["metadata_load_ms"],
                        "opening_ms": timer_ms(_OPENING, plan),
                        "scanning_ms": timer_ms(_SCANNING, plan),
                    }
                result["met"] = all(
                    result[k]["p99_ms"] < TARGETS["p99_ms"] for k in latency.QUERIES
                )
                result["load_1m_start_end"] = [at_start, load()]
                report["layouts"][layout] = result

            measure("appended", "history", build_s["history"])
            at = time.perf_counter()
            DeltaTable(uri["history"], storage_options=opts).optimize.compact()
            compact_s = round(time.perf_counter() - at, 1)
            time.sleep(RELOAD_INTERVAL_S + 1)  # ROAPI's reload: it serves the compacted version
            measure("compacted", "history", compact_s)
            measure("point_sized", "point_sized", build_s["point_sized"])
    finally:
        for table_uri in uri.values():
            drop_table(table_uri, opts)
        shutil.rmtree(folder, ignore_errors=True)
    loads["end"] = load()
    report.update(
        row_group_rows=args.row_group_rows,
        page_rows=args.page_rows,
        queries_per_kind=args.queries,
        target_p99_ms=TARGETS["p99_ms"],
        load_average_1m_start_end=[loads["start"], loads["end"]],
        load_after_build=loads["built"],
        cpus=os.cpu_count(),
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=round(time.perf_counter() - started, 1),
    )
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
