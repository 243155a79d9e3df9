"""Does a second or third ingest worker help? Catch-up with 1, 2 and 3 workers.

Run: ``.venv/bin/python benchmarks/writer_scaleout.py [--messages 600000]`` with the stack
up and the writer built (``make setup``). It

1. preloads a 6-partition topic with ``--messages`` generator rows (reused when it already
   holds them),
2. for 1, 2 and 3 workers: starts that many ``neuralake-writer ingest --stop-at-end``
   processes in one fresh consumer group on a fresh table, and times them from launch until
   the last one has exited (each exits once the partitions it owns are committed up to the
   end seen at its start),
3. checks the table holds every message exactly once,

and prints one JSON object (also written to ``docs/benchmarks/writer_scaleout.json``):
messages per second per run, the speed-up over one worker, each worker's summary, the summed
peak resident memory, and the load average before and after each run.

This is a measurement, not a test. On the lab's 2-core machine the broker, the S3 server and
every worker share the same two cores, so more workers mostly compete for them; the number
that carries over to a cluster is the one-worker rate, times the workers, while each has
cores, network and partitions of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import polars as pl
import psutil

import neuralake
from neuralake.delta import drop_table
from neuralake.lab.stack.processes import free_port
from neuralake.lab.writer import binary, control
from neuralake.streaming import produce, topics
from neuralake.streaming.schemas import dead_letter_uri

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "writer_scaleout.json"
PARTITIONS = 6


def preload(s: neuralake.Settings, topic: str, messages: int) -> bool:
    """Fill ``topic`` unless it already holds ``messages``; True when reused."""
    if topic in topics.admin(s).list_topics(timeout=10).topics:
        if int(topics.describe(s, topic)["messages"].sum()) == messages:
            return True
        topics.delete_topic(s, topic)
        time.sleep(2)  # deletion is asynchronous in the broker
    produce.produce(s, topic=topic, count=messages, partitions=PARTITIONS)
    return False


def run(s: neuralake.Settings, topic: str, workers: int, messages: int) -> dict:
    table = f"bench_scaleout_{workers}_{uuid.uuid4().hex[:6]}"
    uri = s.table_uri(table)
    env = {
        **control.process_env(s, topic=topic, table_uri=uri),
        "NEURALAKE_WRITER_GROUP_ID": f"bench.scaleout.{uuid.uuid4().hex[:8]}",
    }
    load_before = os.getloadavg()
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [str(binary.find(s.cache_dir)), "ingest", "--stop-at-end"],
            env={**env, "NEURALAKE_WRITER_METRICS_ADDR": f"127.0.0.1:{free_port()}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(workers)
    ]
    peak = dict.fromkeys(range(workers), 0)
    while any(p.poll() is None for p in procs):
        for i, p in enumerate(procs):
            with contextlib.suppress(psutil.NoSuchProcess):
                peak[i] = max(peak[i], psutil.Process(p.pid).memory_info().rss)
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    summaries = []
    for p in procs:
        out = p.stdout.read() if p.stdout else ""
        if p.returncode != 0:
            raise SystemExit(f"a worker exited with {p.returncode}")
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    keys = pl.read_delta(uri, storage_options=s.storage_options).select(
        "kafka_partition", "kafka_offset"
    )
    dead = pl.read_delta(dead_letter_uri(uri), storage_options=s.storage_options)
    stored = keys.height + dead.height
    if keys.n_unique() != keys.height or stored != messages:
        raise SystemExit(f"{workers} workers: {stored} stored for {messages} messages")
    for target in (uri, dead_letter_uri(uri)):
        drop_table(target, s.storage_options)
    return {
        "workers": workers,
        "seconds": round(seconds, 2),
        "messages_per_s": round(messages / seconds),
        "peak_rss_mib_total": round(sum(peak.values()) / 2**20),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "worker_summaries": summaries,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600_000)
    parser.add_argument("--topic", default="bench.writer-scaleout")
    args = parser.parse_args()
    s = neuralake.settings()
    reused = preload(s, args.topic, args.messages)
    runs = [run(s, args.topic, n, args.messages) for n in (1, 2, 3)]
    one = runs[0]["messages_per_s"]
    for r in runs:
        r["speedup_over_one"] = round(r["messages_per_s"] / one, 2)
    report = {
        "benchmark": "writer_scaleout",
        "topic": args.topic,
        "partitions": PARTITIONS,
        "messages": args.messages,
        "topic_reused": reused,
        "cores": os.cpu_count(),
        "runs": runs,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
