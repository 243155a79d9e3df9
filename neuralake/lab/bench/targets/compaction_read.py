"""``benchmarks/compaction_read.py``: its target and how the report reads one run."""

from __future__ import annotations

from neuralake.lab.bench.acceptance import Benchmark, Check, at_least

#: The issue's target: a one-partition read, open + scan, after vs before compaction.
TARGETS = {"open_scan_speedup": 5.0}


def checks(run: dict) -> list[Check]:
    """``benchmarks/compaction_read.py``: one partition read before and after compaction.

    The target is on *open + scan* (what a new reader pays); *scan only* is shown beside it.
    """
    before, after = run["before"], run["after"]
    return [
        Check("rows in the partition", f"{run['rows']:,}"),
        Check("files before -> after", f"{run['files_before']:,} -> {run['files_after']:,}"),
        Check("bytes before -> after", f"{run['bytes_before']:,} -> {run['bytes_after']:,}"),
        Check(
            "open + scan, median", f"{before['open_scan_s']:.3f} s -> {after['open_scan_s']:.3f} s"
        ),
        at_least(
            "open + scan speed-up",
            before["open_scan_s"] / after["open_scan_s"],
            TARGETS["open_scan_speedup"],
            "{:.2f}",
            "x",
        ),
        Check(
            "scan only, median", f"{before['scan_only_s']:.3f} s -> {after['scan_only_s']:.3f} s"
        ),
        Check("scan only speed-up", f"{before['scan_only_s'] / after['scan_only_s']:.1f}x"),
    ]


BENCHMARK = Benchmark(
    "Rust writer: one-partition read after compaction",
    "compaction_read",
    "benchmarks/compaction_read.py",
    checks,
)
