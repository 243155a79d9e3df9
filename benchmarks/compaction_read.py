"""How much faster is a one-partition read after compaction? (target: at least 5x)

Run: ``.venv/bin/python benchmarks/compaction_read.py [--files 200 --rows-per-file 500]``
with the stack up and the writer built (``make setup``). It

1. produces ``files * rows_per_file`` generator messages to a fresh topic (timestamps of
   "now": one ``date`` partition),
2. runs ``neuralake-writer ingest --stop-at-end --flush-rows <rows_per_file>`` into a fresh
   table: one commit, so one small Parquet file, per ``rows_per_file`` messages,
3. times a one-partition read with Polars, ``filter(date == d).collect()``, two ways, each the
   median of ``--runs`` warm runs: *open + scan* (``pl.scan_delta`` on the URI: reads the log,
   lists the files, reads them) and *scan only* (a ``DeltaTable`` opened once, reused),
4. runs ``neuralake-writer compact --once`` and times the same reads again,

and prints a small table plus ONE JSON line: file counts and bytes of the partition before and
after, the four medians, the two speed-ups and the 1-minute load average (the machine is
shared: a busy box slows both sides, the ratio less than the times). The topic and table are
deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
import uuid

import polars as pl
from deltalake import DeltaTable

import neuralake
from neuralake.delta import drop_table
from neuralake.lab.bench.targets.compaction_read import TARGETS
from neuralake.lab.stack.processes import free_port
from neuralake.lab.writer import binary, control
from neuralake.streaming import produce, topics
from neuralake.streaming.schemas import dead_letter_uri

TARGET_SPEEDUP = TARGETS["open_scan_speedup"]  # the report checks the same number


def run_writer(exe: str, args: list[str], env: dict[str, str]) -> dict:
    """Run one ``neuralake-writer`` subcommand; its last stdout line as JSON."""
    proc = subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        raise SystemExit(f"neuralake-writer {args[0]} failed ({proc.returncode}): {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def partition_files(uri: str, storage: dict[str, str], date: str) -> tuple[int, int]:
    """Live files and their bytes in the ``date`` partition of the latest version."""
    adds = DeltaTable(uri, storage_options=storage).get_add_actions(flatten=True)
    frame = pl.DataFrame(adds).filter(pl.col("partition.date").cast(pl.Utf8) == date)
    return frame.height, int(frame["size_bytes"].sum())


def median_seconds(read, runs: int) -> tuple[float, int]:
    """Median wall seconds of ``runs`` warm calls of ``read`` (one untimed warm-up first)."""
    rows = read()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        read()
        times.append(time.perf_counter() - started)
    return statistics.median(times), rows


def measure_reads(uri: str, storage: dict[str, str], day: pl.Expr, runs: int) -> dict:
    """Open + scan and scan-only medians of one partition's read."""

    def open_and_scan() -> int:
        return pl.scan_delta(uri, storage_options=storage).filter(day).collect().height

    opened = DeltaTable(uri, storage_options=storage)

    def scan_only() -> int:
        return pl.scan_delta(opened).filter(day).collect().height

    open_s, rows = median_seconds(open_and_scan, runs)
    scan_s, _ = median_seconds(scan_only, runs)
    return {"open_scan_s": round(open_s, 4), "scan_only_s": round(scan_s, 4), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200, help="small files to start from")
    parser.add_argument("--rows-per-file", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5, help="timed warm runs per read")
    parser.add_argument("--target-size", type=int, default=134_217_728, help="compaction bytes")
    parser.add_argument("--keep", action="store_true", help="keep the topic and table")
    args = parser.parse_args()

    s = neuralake.settings("stack")
    storage = s.storage_options
    exe = str(binary.find())
    run_id = uuid.uuid4().hex[:6]
    topic, table = f"bench.compaction.{run_id}", f"bench_compaction_{run_id}"
    uri = s.table_uri(table)
    env = control.process_env(s, topic=topic, table_uri=uri)
    env["NEURALAKE_WRITER_METRICS_ADDR"] = f"127.0.0.1:{free_port()}"
    try:
        produce.produce(s, topic=topic, count=args.files * args.rows_per_file, partitions=3)
        ingest = run_writer(
            exe, ["ingest", "--stop-at-end", "--flush-rows", str(args.rows_per_file)], env
        )
        dates = pl.scan_delta(uri, storage_options=storage).select("date").unique().collect()
        date = str(dates["date"].max())
        day = pl.col("date") == pl.lit(dates["date"].max())

        files_before, bytes_before = partition_files(uri, storage, date)
        before = measure_reads(uri, storage, day, args.runs)
        compact = run_writer(
            exe, ["compact", "--once", "--min-files", "2", "--target-size", str(args.target_size)],
            env,
        )  # fmt: skip
        files_after, bytes_after = partition_files(uri, storage, date)
        after = measure_reads(uri, storage, day, args.runs)
        if after["rows"] != before["rows"]:
            raise SystemExit(
                f"row count changed by compaction: {before['rows']} -> {after['rows']}"
            )
    finally:
        if not args.keep:
            drop_table(uri, storage)
            drop_table(dead_letter_uri(uri), storage)
            topics.delete_topic(s, topic)

    report = {
        "date": date,
        "rows": before["rows"],
        "commits": ingest["batches"],
        "files_before": files_before,
        "bytes_before": bytes_before,
        "files_after": files_after,
        "bytes_after": bytes_after,
        "target_size": args.target_size,
        "compact": compact,
        "before": before,
        "after": after,
        "speedup_open_scan": round(before["open_scan_s"] / after["open_scan_s"], 1),
        "speedup_scan_only": round(before["scan_only_s"] / after["scan_only_s"], 1),
        "runs": args.runs,
        "load_average_1m": round(os.getloadavg()[0], 1),
        "target_speedup": TARGET_SPEEDUP,
    }
    report["target_met"] = report["speedup_open_scan"] >= TARGET_SPEEDUP
    print(f"| one-partition read ({report['rows']:,} rows) | before | after | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| files | {files_before} | {files_after} | |")
    print(f"| bytes | {bytes_before:,} | {bytes_after:,} | |")
    for key, label in (("open_scan_s", "open + scan"), ("scan_only_s", "scan only")):
        speedup = report[f"speedup_{key.removesuffix('_s')}"]
        print(f"| {label}, median s | {before[key]:.3f} | {after[key]:.3f} | {speedup}x |")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
