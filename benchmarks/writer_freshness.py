"""How fresh is the bronze table for a reader, with a steady stream coming in?

Run: ``.venv/bin/python benchmarks/writer_freshness.py [--rate 10000] [--seconds 30]``
with the stack up and the writer built. It starts a writer for a fresh topic and table
(``--writer rust``: ``neuralake writer up`` with the default 1 s flush; ``--writer
python``: the Python baseline with the same flush rule), produces ``--rate`` messages per
second for ``--seconds``, and meanwhile polls the table every 0.1 s as a reader would
(:func:`neuralake.streaming.freshness.measure`). For every row that becomes visible,
freshness = the moment the poll saw it - its Kafka timestamp.

Prints one JSON object: rows seen, p50/p90/p99/max freshness in seconds, the achieved
producer rate, the machine's load average (a busy machine shows in every number), and
(Rust) the writer's own last freshness gauge. The target: p99 < 2 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

import neuralake
from neuralake.delta import drop_table, open_table
from neuralake.errors import TableNotFoundError
from neuralake.lab.bench.targets.writer_freshness import TARGETS
from neuralake.lab.writer import control
from neuralake.streaming import freshness, metrics, topics
from neuralake.streaming.schemas import dead_letter_uri

TARGET_P99_S = TARGETS["p99_s"]
POLL_S = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--writer", choices=("rust", "python"), default="rust")
    parser.add_argument("--flush-ms", type=int, default=1000, help="the writer's flush interval")
    args = parser.parse_args()

    s = neuralake.settings("stack")
    run_id = uuid.uuid4().hex[:6]
    topic, table = f"bench.fresh.{run_id}", f"bench_fresh_{run_id}"
    uri = s.table_uri(table)
    topics.ensure_topic(s, topic)
    baseline = None
    try:
        if args.writer == "rust":
            control.up(s, topic=topic, table=table, flush_ms=args.flush_ms, echo=lambda _: None)
        else:
            baseline = subprocess.Popen(
                [sys.executable, "-m", "neuralake", "writer", "baseline",
                 "--topic", topic, "--table", table, "--flush-ms", str(args.flush_ms)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        start_version = _wait_for_table(uri, s)
        # The producer runs in its own process, so the reader here has a core to itself.
        count = int(args.rate * args.seconds)
        producer = subprocess.Popen(
            [sys.executable, "-m", "neuralake", "produce", "--topic", topic,
             "--count", str(count), "--rate", str(args.rate)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        seen = freshness.measure(
            uri,
            s.storage_options,
            seconds=args.seconds + 30,  # room for a slow start; stops once every row is seen
            poll_s=POLL_S,
            since_version=start_version,
            until_rows=count,
        )
        produced = json.loads(producer.communicate(timeout=60)[0].strip().splitlines()[-1])
        report = {
            "writer": args.writer,
            "rate": args.rate,
            "seconds": args.seconds,
            "flush_ms": args.flush_ms,
            "poll_s": POLL_S,
            "producer_messages_per_s": produced["messages_per_s"],
            "load_average_1m": round(os.getloadavg()[0], 1),
            **freshness.summary(seen),
        }
        if args.writer == "rust":
            url = next(r.metrics_url for r in control.status(s, table) if r.name == "ingest")
            report["writer_freshness_gauge_s"] = metrics.values(url).get(
                "neuralake_writer_freshness_seconds"
            )
        report["target_p99_s"] = TARGET_P99_S
        report["target_met"] = report["p99_s"] is not None and report["p99_s"] < TARGET_P99_S
        print(json.dumps(report, indent=2))
    finally:
        if baseline is not None:
            baseline.terminate()
            baseline.wait(30)
        control.down(s, table, echo=lambda _: None)
        shutil.rmtree(s.state_dir / "writer" / table, ignore_errors=True)
        topics.delete_topic(s, topic)
        for target in (uri, dead_letter_uri(uri)):
            drop_table(target, s.storage_options)


def _wait_for_table(uri: str, s: neuralake.Settings, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return open_table(uri, s.storage_options).version()
        except TableNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


if __name__ == "__main__":
    main()
