"""Latency percentiles of repeated queries, the way an API is judged.

A mean hides the slow requests a user notices; p99 is the latency 1 request in 100
exceeds. Each query is sent once to warm up (connections, caches), then ``runs`` times;
each run may be a different query (``queries`` cycles), so no answer is cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

#: The three query shapes of the benchmark, over the bronze table's columns.
QUERIES = {
    "point": "SELECT * FROM {t} WHERE kafka_partition = 0 AND kafka_offset = {offset}",
    "filter": "SELECT timestamp, voltage_uv FROM {t} "
    "WHERE session_id = {session} AND channel = {channel} LIMIT 100",
    "aggregate": "SELECT channel, count(voltage_uv) AS samples, avg(voltage_uv) AS mean_uv "
    "FROM {t} WHERE session_id = {session} GROUP BY channel",
}


def queries(kind: str, table: str, rows: int, count: int, seed: int = 0) -> list[str]:
    """``count`` queries of one shape with random (seeded) keys inside ``rows`` rows."""
    rng = np.random.default_rng(seed)
    return [
        QUERIES[kind].format(
            t=table,
            offset=int(rng.integers(0, rows)),
            session=int(rng.integers(1, 101)),
            channel=int(rng.integers(0, 64)),
        )
        for _ in range(count)
    ]


#: The same shapes asked about recent data (the hot path's questions): the point query
#: names a row the window holds, the others add an arrival-time bound, so a provider can
#: prune the table's history on the Delta log's statistics.
RECENT = {
    "point": QUERIES["point"].replace("kafka_partition = 0", "kafka_partition = {partition}"),
    "filter": QUERIES["filter"].replace("LIMIT", "AND kafka_timestamp >= '{since}' LIMIT"),
    "aggregate": QUERIES["aggregate"].replace(
        "GROUP BY", "AND kafka_timestamp >= '{since}' GROUP BY"
    ),
}


def recent_queries(
    kind: str,
    table: str,
    keys: Sequence[tuple[int, int]],
    since: str,
    count: int,
    seed: int = 0,
    sessions: int = 1,
) -> list[str]:
    """``count`` queries of one shape about recent rows: point keys drawn from ``keys``
    (``(kafka_partition, kafka_offset)`` pairs), filter and aggregate since ``since`` for
    a session in ``1..sessions`` (the writer's messages come from ``sessions`` sessions)."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(keys), count)
    return [
        RECENT[kind].format(
            t=table,
            partition=keys[int(i)][0],
            offset=keys[int(i)][1],
            since=since,
            session=int(rng.integers(1, sessions + 1)),
            channel=int(rng.integers(0, 64)),
        )
        for i in picks
    ]


def percentiles(samples_ms: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of latencies in milliseconds, rounded to 0.1 ms."""
    p50, p95, p99 = np.percentile(np.asarray(samples_ms), [50, 95, 99])
    return {
        "p50_ms": round(float(p50), 1),
        "p95_ms": round(float(p95), 1),
        "p99_ms": round(float(p99), 1),
    }


Q = TypeVar("Q")  # what one call takes: a SQL string, a session id...


def measure(run: Callable[[Q], Any], sql: Sequence[Q], warmup: int = 3) -> list[float]:
    """Milliseconds per call of ``run(q)`` for each ``q`` in ``sql``, after ``warmup`` calls."""
    for q in sql[:warmup]:
        run(q)
    samples = []
    for q in sql:
        started = time.perf_counter()
        run(q)
        samples.append((time.perf_counter() - started) * 1000)
    return samples
