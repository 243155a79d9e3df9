"""How fast do the writers catch up on a full topic? Rust vs Python vs the Kafka ceiling.

Run: ``.venv/bin/python benchmarks/writer_throughput.py [--messages 2000000]`` with the
stack up and the writer built (``make setup``). It

1. preloads a topic with ``--messages`` generator rows across 3 partitions (once: a
   topic that already holds them is reused),
2. runs ``neuralake-writer bench-consume``: read every message and discard it, the
   ceiling no consumer on this machine can beat,
3. runs ``neuralake-writer ingest --stop-at-end`` into a fresh table, and
4. runs the Python baseline ``neuralake writer baseline --stop-at-end`` into another,

and prints one JSON object: messages per second for each, Rust as a fraction of the
ceiling, the Rust/Python speed-up, each process's peak resident memory (VmHWM, polled
from /proc while it runs) and the load average at start and end (on a shared 2-core
machine the broker, the S3 server and the writer compete for the cores: every number
moves with the load). It appends the object to ``docs/benchmarks/writer_throughput.json``
(``--no-save``: print only). The targets: Rust catch-up >= 0.65 of raw consume (moonshot
0.8), >= 100,000 msg/s, and >= 5x Python. About 40 s at the default scale (the first run
also preloads the topic: about 15 s more).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil

import neuralake
from neuralake.delta import drop_table
from neuralake.lab.bench.targets.writer_throughput import TARGETS
from neuralake.lab.stack.processes import free_port
from neuralake.lab.writer import binary, control
from neuralake.streaming import produce, topics
from neuralake.streaming.schemas import dead_letter_uri

TARGET_MESSAGES_PER_S = TARGETS["rust_messages_per_s"]
TARGET_SPEEDUP = TARGETS["speedup"]
TARGET_FRACTION = TARGETS["fraction_of_consume"]
RESULTS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "writer_throughput.json"


def preload(s: neuralake.Settings, topic: str, messages: int) -> dict:
    """Fill ``topic`` with ``messages`` messages unless it already holds them."""
    if topic in topics.admin(s).list_topics(timeout=10).topics:
        held = int(topics.describe(s, topic)["messages"].sum())
        if held == messages:
            return {"reused": True, "messages": held}
        topics.delete_topic(s, topic)
        time.sleep(2)  # deletion is asynchronous in the broker
    result = produce.produce(s, topic=topic, count=messages, partitions=3)
    return {
        "reused": False,
        "messages": result.sent,
        "producer_messages_per_s": result.messages_per_s,
    }


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[dict, float, float]:
    """Run ``cmd``; its last stdout line as JSON, wall seconds, peak RSS in MiB."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _high_water_mark(watched))
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-3:]
        raise SystemExit(f"{' '.join(cmd[:3])} failed ({proc.returncode}): {' | '.join(tail)}")
    return json.loads(stdout.strip().splitlines()[-1]), wall, peak / 2**20


def _high_water_mark(proc: psutil.Process) -> int:
    """Peak RSS so far (VmHWM), falling back to the current RSS."""
    try:
        with open(f"/proc/{proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return proc.memory_info().rss
    except (OSError, psutil.Error):
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000_000)
    parser.add_argument("--topic", default=None, help="default: bench.writer.<messages>")
    parser.add_argument("--skip-python", action="store_true", help="only the Rust side")
    parser.add_argument("--keep", action="store_true", help="keep the tables afterwards")
    parser.add_argument("--decoders", type=int, default=0, help="Rust decoder threads (0: cores)")
    parser.add_argument("--no-save", action="store_true", help=f"do not append to {RESULTS.name}")
    args = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 1)

    s = neuralake.settings("stack")
    exe = str(binary.find())
    topic = args.topic or f"bench.writer.{args.messages}"
    run_id = uuid.uuid4().hex[:6]
    rust_table, python_table = f"bench_rust_{run_id}", f"bench_python_{run_id}"
    report: dict = {
        "messages": args.messages,
        "topic": topic,
        "preload": preload(s, topic, args.messages),
    }

    env = control.process_env(s, topic=topic, table_uri=s.table_uri(rust_table))
    env["NEURALAKE_WRITER_METRICS_ADDR"] = f"127.0.0.1:{free_port()}"
    env["NEURALAKE_WRITER_DECODERS"] = str(args.decoders)
    report["decoders"] = args.decoders or os.cpu_count()
    ceiling, _, _ = run_measured([exe, "bench-consume"], env)
    report["ceiling"] = ceiling

    summary, wall, rss = run_measured([exe, "ingest", "--stop-at-end"], env)
    report["rust"] = {
        **summary,
        "messages_per_s": round(summary["messages"] / summary["seconds"]),
        "wall_seconds": round(wall, 2),
        "peak_rss_mib": round(rss, 1),
    }
    report["rust_fraction_of_ceiling"] = round(
        report["rust"]["messages_per_s"] / ceiling["messages_per_s"], 3
    )

    if not args.skip_python:
        cmd = [
            sys.executable, "-m", "neuralake", "writer", "baseline",
            "--topic", topic, "--table", python_table, "--stop-at-end",
        ]  # fmt: skip
        summary, wall, rss = run_measured(cmd, {**env, "NEURALAKE_PROFILE": "stack"})
        report["python"] = {
            **summary,
            "messages_per_s": round(summary["messages"] / summary["seconds"]),
            "wall_seconds": round(wall, 2),
            "peak_rss_mib": round(rss, 1),
        }
        report["speedup"] = round(
            report["rust"]["messages_per_s"] / report["python"]["messages_per_s"], 2
        )
    # a busy machine slows all three
    report["load_average_1m_start_end"] = [load_at_start, round(os.getloadavg()[0], 1)]
    report["targets"] = {
        "rust_messages_per_s": TARGET_MESSAGES_PER_S,
        "rust_met": report["rust"]["messages_per_s"] >= TARGET_MESSAGES_PER_S,
        "fraction_of_consume": TARGET_FRACTION,
        "fraction_met": report["rust_fraction_of_ceiling"] >= TARGET_FRACTION,
        "speedup": TARGET_SPEEDUP,
        "speedup_met": report.get("speedup", 0) >= TARGET_SPEEDUP,
    }
    if not args.keep:
        for table in (rust_table, python_table):
            for uri in (s.table_uri(table), dead_letter_uri(s.table_uri(table))):
                drop_table(uri, s.storage_options)
    print(json.dumps(report, indent=2))
    if not args.no_save:
        saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
        RESULTS.write_text(json.dumps([*saved, report], indent=2) + "\n")


if __name__ == "__main__":
    main()
