"""How fresh is the bronze table for a reader, with a steady stream coming in?

Run: ``.venv/bin/python benchmarks/writer_freshness.py [--rate 10000] [--seconds 30]
[--flush-ms 1000 200]`` with the stack up and the writer built. For each flush interval
(default: 1 s, then 200 ms) it starts a writer for a fresh topic and table (``--writer
rust``: ``neuralake writer up``; ``--writer python``: the Python baseline with the same
flush rule), produces ``--rate`` messages per second for ``--seconds``, and meanwhile
polls the table every ``--poll-s`` as a reader would
(:func:`neuralake.streaming.freshness.measure`). For every row that becomes visible,
freshness = the moment the poll saw it - its Kafka timestamp (so the poll interval is part
of every number, and reported beside it).

Prints a JSON list, one object per flush interval: rows seen, p50/p90/p99/max freshness in
seconds, the achieved producer rate, the load average at start and end (a busy machine
shows in every number), the writer's peak memory (VmHWM) and (Rust) its own last freshness
gauge; and appends them to ``docs/benchmarks/writer_freshness.json`` (``--no-save``: print
only). The target: p99 at most the flush interval + 150 ms.
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
from pathlib import Path

import neuralake
from neuralake.delta import drop_table, open_table
from neuralake.errors import TableNotFoundError
from neuralake.lab.bench.targets.writer_freshness import FLUSH_MS, TARGETS, p99_target_s
from neuralake.lab.writer import control
from neuralake.streaming import freshness, metrics, topics
from neuralake.streaming.schemas import dead_letter_uri

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "writer_freshness.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=TARGETS["rate"])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--writer", choices=("rust", "python"), default="rust")
    parser.add_argument(
        "--flush-ms", type=int, nargs="+", default=list(FLUSH_MS),
        help="the writer's flush intervals, one run each",
    )  # fmt: skip
    parser.add_argument("--poll-s", type=float, default=0.05, help="the reader's poll interval")
    parser.add_argument("--no-save", action="store_true", help=f"do not append to {RESULTS.name}")
    args = parser.parse_args()

    s = neuralake.settings("stack")
    reports = [run(s, args, flush_ms) for flush_ms in args.flush_ms]
    print(json.dumps(reports, indent=2))
    if not args.no_save:
        saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.write_text(json.dumps([*saved, *reports], indent=2) + "\n")


def run(s: neuralake.Settings, args: argparse.Namespace, flush_ms: int) -> dict:
    """One writer, one topic, one table: produce at the rate and measure what a reader sees."""
    load_at_start = round(os.getloadavg()[0], 1)
    run_id = uuid.uuid4().hex[:6]
    topic, table = f"bench.fresh.{run_id}", f"bench_fresh_{run_id}"
    uri = s.table_uri(table)
    topics.ensure_topic(s, topic)
    baseline = None
    try:
        if args.writer == "rust":
            control.up(s, topic=topic, table=table, flush_ms=flush_ms, echo=lambda _: None)
        else:
            baseline = subprocess.Popen(
                [sys.executable, "-m", "neuralake", "writer", "baseline",
                 "--topic", topic, "--table", table, "--flush-ms", str(flush_ms)],
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
            poll_s=args.poll_s,
            since_version=start_version,
            until_rows=count,
        )
        produced = json.loads(producer.communicate(timeout=60)[0].strip().splitlines()[-1])
        report = {
            "writer": args.writer,
            "rate": args.rate,
            "seconds": args.seconds,
            "flush_ms": flush_ms,
            "poll_s": args.poll_s,
            "producer_messages_per_s": produced["messages_per_s"],
            "load_average_1m_start_end": [load_at_start, round(os.getloadavg()[0], 1)],
            **freshness.summary(seen),
        }
        if args.writer == "rust":
            ingest = next(r for r in control.status(s, table) if r.name == "ingest")
            report["writer_freshness_gauge_s"] = metrics.values(ingest.metrics_url).get(
                "neuralake_writer_freshness_seconds"
            )
            report["writer_peak_rss_mib"] = _peak_rss_mib(ingest.pid)
        elif baseline is not None:
            report["writer_peak_rss_mib"] = _peak_rss_mib(baseline.pid)
        p99_target = p99_target_s(flush_ms)
        report["target_p99_s"] = round(p99_target, 3)
        report["target_met"] = report["p99_s"] is not None and report["p99_s"] <= p99_target
        return report
    finally:
        if baseline is not None:
            baseline.terminate()
            baseline.wait(30)
        control.down(s, table, echo=lambda _: None)
        shutil.rmtree(s.state_dir / "writer" / table, ignore_errors=True)
        topics.delete_topic(s, topic)
        for target in (uri, dead_letter_uri(uri)):
            drop_table(target, s.storage_options)


def _peak_rss_mib(pid: int | None) -> float | None:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except (OSError, TypeError):
        pass
    return None


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
