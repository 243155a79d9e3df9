"""The hot path on fresh data: ROAPI's serving window vs ROAPI's provider vs FastAPI + Polars.

Run: ``.venv/bin/python benchmarks/api_latency.py [--rows 10000000] [--queries 200]
[--out docs/benchmarks/api_latency_fresh.json]`` with the stack up and the Rust writer built.
It

1. fills a fresh bronze table with ``--rows`` rows of history (partitioned by ``date``
   like the writer's, a day before the run, Kafka partition 100 so no key collides
   with the writer's), then starts the Rust writer on a fresh topic into that table and
   produces ``--rate`` messages a second: a commit about every second for the whole run;
2. keeps the table's serving window (:mod:`neuralake.api.window`: its last
   ``--window-s`` seconds in one Parquet object, rewritten after each commit) with the
   same process the lab's ``serve()`` starts;
3. starts a private ROAPI with the catalog's entries: the live table in provider mode
   (reloaded every 2 s) and the window in memory (reloaded every second), and the
   FastAPI + Polars baseline (:mod:`neuralake.api.baseline`) on the live table, re-read
   when the log has a new version at most every ``--baseline-refresh-s``;
4. measures freshness: the age of the newest row each server returns
   (``now - max(kafka_timestamp)``, the producer's clock), sampled while the writer runs;
5. sends point, filter and aggregate queries about recent rows
   (:data:`neuralake.api.latency.RECENT`: a row the window holds, one channel's rows
   and a per-channel aggregate since the window's start) to each server, one at a time,
   over a kept-alive connection, Arrow IPC answers; and the same shapes over the
   whole table (:data:`neuralake.api.latency.QUERIES`) to the provider and FastAPI;
6. records where one query of each kind spent its effort (``EXPLAIN ANALYZE``: files,
   row groups, bytes, footer loads, in-memory batches) and the live table's file count.

Prints one JSON object with the load average (1 min) beside every measurement.
The target: p99 < 100 ms for each query kind (moonshot 50 ms) on data at most 5 s old.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from deltalake import DeltaTable, write_deltalake

import neuralake
from neuralake.api import explain, latency
from neuralake.api.client import RoapiClient
from neuralake.api.sample import bronze_rows
from neuralake.api.window import window_uri
from neuralake.catalog.roapi import window_table_entry
from neuralake.delta import drop_table
from neuralake.lab.api.server import baseline, delta_entry, roapi, window
from neuralake.lab.bench.targets.api_latency import TARGETS
from neuralake.lab.writer import control
from neuralake.streaming import topics
from neuralake.streaming.produce import produce
from neuralake.streaming.schemas import PARTITION_BY, dead_letter_uri

#: Issue 16's hot-path targets (:data:`TARGETS`, which the report checks this run against):
#: p99 under 100 ms per query kind (moonshot 50 ms) on data at most 5 s old.
TARGET_P99_MS, MOONSHOT_P99_MS = TARGETS["p99_ms"], TARGETS["moonshot_p99_ms"]
FRESH_S = TARGETS["fresh_s"]
CHUNK = 1_000_000
HISTORY_PARTITION = 100  # the filled rows' Kafka partition: no writer key collides


def load() -> float:
    return round(os.getloadavg()[0], 2)


def fill(uri: str, rows: int, options: dict) -> None:
    """``rows`` rows of history, a day ago, in chunks of 1M (one commit each)."""
    start = datetime.now(UTC) - timedelta(days=1)
    for i, first in enumerate(range(0, rows, CHUNK)):
        chunk = bronze_rows(min(CHUNK, rows - first), seed=i, start=start)
        chunk = chunk.with_columns(
            pl.col("kafka_offset") + first, pl.lit(HISTORY_PARTITION).alias("kafka_partition")
        ).cast({"kafka_partition": pl.Int32})
        write_deltalake(
            uri, chunk.to_arrow(), mode="append", partition_by=PARTITION_BY, storage_options=options
        )


def stream(profile: str, topic: str, rate: float, stop) -> None:
    """About ``rate`` messages a second into ``topic`` until ``stop`` is set."""
    s = neuralake.settings(profile)
    while not stop.is_set():
        produce(s, topic=topic, count=max(1, int(rate)), rate=rate, seed=int(time.time()))


def freshness(ask, table: str, samples: int, every_s: float = 0.5) -> dict[str, float]:
    """Seconds between now and the newest row ``table`` serves, sampled ``samples`` times."""
    ages = []
    for _ in range(samples):
        newest = ask(f"SELECT max(kafka_timestamp) AS newest FROM {table}")["newest"][0]
        ages.append((datetime.now(UTC) - newest).total_seconds())
        time.sleep(every_s)
    p50, p99 = np.percentile(ages, [50, 99])
    return {
        "p50_s": round(float(p50), 2),
        "p99_s": round(float(p99), 2),
        "max_s": round(max(ages), 2),
    }


def met(results: dict[str, dict], fresh: dict[str, dict], p99_ms: float) -> dict[str, bool]:
    """Per server and question: every kind's p99 under ``p99_ms`` on data <= 5 s old."""
    return {
        name: all(by_kind[k]["p99_ms"] < p99_ms for k in latency.QUERIES)
        and fresh[name.split(",")[0]]["max_s"] <= FRESH_S
        for name, by_kind in results.items()
        if "SELECT 1" not in name
    }


def scans(client: RoapiClient, sql_by_kind: dict[str, str]) -> dict[str, dict]:
    """What one query of each kind read (``EXPLAIN ANALYZE`` scan metrics)."""
    return {k: explain.scan_metrics(explain.plan(client, sql)) for k, sql in sql_by_kind.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=TARGETS["rows"])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--provider-queries", type=int, default=20)
    parser.add_argument("--rate", type=float, default=1_000, help="writer messages per second")
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--warm-s", type=float, default=20.0, help="writer run before measuring")
    parser.add_argument("--freshness-samples", type=int, default=20)
    parser.add_argument("--baseline-refresh-s", type=float, default=5.0)
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args()

    s = neuralake.settings("stack")
    run = uuid.uuid4().hex[:8]
    table, topic = f"bench_api_{run}", f"bench-api-{run}"
    live_uri, opts = s.table_uri(table), s.storage_options
    recent_uri = window_uri(live_uri)
    started = time.perf_counter()
    loads: dict[str, float] = {"start": load()}
    fill(live_uri, args.rows, opts)
    fill_s = time.perf_counter() - started

    folder = Path(tempfile.mkdtemp(prefix="api_latency_"))
    version_before = DeltaTable(live_uri, storage_options=opts).version()
    topics.ensure_topic(s, topic, 3)
    # in a process of its own: a producer thread here would share the GIL with the
    # thread timing the queries, and its work would show up as query latency
    stop = multiprocessing.get_context("spawn").Event()
    producer = multiprocessing.get_context("spawn").Process(
        target=stream, args=(s.profile, topic, args.rate, stop), daemon=True
    )
    report: dict = {}
    try:
        control.up(s, topic=topic, table=table, echo=lambda _: None)
        producer.start()
        time.sleep(args.warm_s)  # the writer's first commits, before the window starts
        window_log = folder / "window.log"
        with (
            window(live_uri, recent_uri, args.window_s, s, folder),
            roapi(
                [delta_entry("live", live_uri), window_table_entry("recent", recent_uri)],
                s,
                folder,
                timeout=600,
            ) as at,
            RoapiClient(at.http, timeout=120) as client,
        ):
            time.sleep(args.window_s / 4)  # let the window fill a little
            keys = client.sql("SELECT kafka_partition, kafka_offset FROM recent").rows()
            since = (datetime.now(UTC) - timedelta(seconds=args.window_s)).isoformat()

            def recent(kind: str, t: str, n: int) -> list[str]:
                return latency.recent_queries(kind, t, keys, since, n, seed=1)

            def history(kind: str, t: str, n: int) -> list[str]:
                sql = latency.queries(kind, t, args.rows, n, seed=1)
                return [
                    q.replace("kafka_partition = 0", f"kafka_partition = {HISTORY_PARTITION}")
                    for q in sql
                ]

            fresh: dict[str, dict] = {}
            results: dict[str, dict] = {}
            where: dict[str, dict] = {}

            def phase(name: str, send, served: str, make, count: int) -> None:
                at_start = load()
                results[name] = {
                    kind: latency.percentiles(latency.measure(send, make(kind, served, count)))
                    for kind in latency.QUERIES
                }
                results[name]["queries_per_kind"] = count
                results[name]["load_1m_start_end"] = [at_start, load()]
                if name.startswith("roapi"):
                    where[name] = scans(client, {k: make(k, served, 1)[0] for k in latency.QUERIES})

            # ROAPI first, with no FastAPI process re-reading the table beside it
            floor = latency.measure(client.sql, ["SELECT 1"] * args.queries)
            results["roapi, SELECT 1 (no table)"] = {
                **latency.percentiles(floor), "load_1m": load()
            }  # fmt: skip
            fresh["roapi_window"] = freshness(client.sql, "recent", args.freshness_samples)
            fresh["roapi_provider"] = freshness(client.sql, "live", args.freshness_samples)
            phase("roapi_window, recent", client.sql, "recent", recent, args.queries)
            phase("roapi_provider, recent", client.sql, "live", recent, args.provider_queries)
            phase("roapi_provider, whole table", client.sql, "live", history, args.provider_queries)
            # then the FastAPI + Polars service, on the same live table, same queries
            with (
                baseline(live_uri, "live", s, folder, refresh_s=args.baseline_refresh_s) as base,
                httpx.Client(timeout=120) as http,  # one connection kept open, as ROAPI's client
            ):

                def fastapi(sql: str) -> pl.DataFrame:
                    answer = http.post(f"{base}/sql", content=sql.encode())
                    answer.raise_for_status()
                    return pl.read_ipc_stream(answer.content)

                fresh["fastapi_polars"] = freshness(fastapi, "live", args.freshness_samples)
                phase("fastapi_polars, recent", fastapi, "live", recent, args.queries)
                phase("fastapi_polars, whole table", fastapi, "live", history, args.queries)
            window_rows = client.sql("SELECT count(voltage_uv) AS n FROM recent")["n"][0]
            rows_live = client.sql("SELECT count(voltage_uv) AS n FROM live")["n"][0]
        live_files = len(DeltaTable(live_uri, storage_options=opts).file_uris())
        refreshes = [
            line for line in window_log.read_text().splitlines() if line.startswith("version")
        ]
        refresh_ms = [float(line.rsplit(" ", 2)[-2]) for line in refreshes]
        loads["end"] = load()
        report = {
            "rows_history": args.rows,
            "rows_live_at_end": int(rows_live),
            "window_s": args.window_s,
            "window_rows_at_end": int(window_rows),
            "files": {"live_table": live_files, "window": 1},
            "window_refreshes": {
                "count": len(refresh_ms),
                "p50_ms": round(float(np.percentile(refresh_ms, 50)), 1) if refresh_ms else None,
                "max_ms": round(max(refresh_ms), 1) if refresh_ms else None,
            },
            "writer_rate_msgs_per_s": args.rate,
            "fill_s": round(fill_s, 1),
            "freshness_age_of_newest_row": fresh,
            "latency": results,
            "scan_metrics": where,
            "targets": {
                "p99_ms": TARGET_P99_MS,
                "moonshot_p99_ms": MOONSHOT_P99_MS,
                "fresh_s": FRESH_S,
                "met": met(results, fresh, TARGET_P99_MS),
                "moonshot_met": met(results, fresh, MOONSHOT_P99_MS),
            },
            "load_average_1m_start_end": [loads["start"], loads["end"]],
            "cpus": os.cpu_count(),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        stop.set()
        if producer.is_alive():
            producer.join(timeout=30)
            producer.kill()
        control.down(s, table, echo=lambda _: None)
        topics.delete_topic(s, topic)
        shutil.rmtree(s.state_dir / "writer" / table, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    report["writer_commits_during_run"] = (
        DeltaTable(live_uri, storage_options=opts).version() - version_before
    )
    report["seconds"] = round(time.perf_counter() - started, 1)
    for uri in (live_uri, dead_letter_uri(live_uri), recent_uri.rsplit("/", 1)[0]):
        drop_table(uri, opts)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
