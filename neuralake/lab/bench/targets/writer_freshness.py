"""``benchmarks/writer_freshness.py``: its targets and how the report reads one run."""

from __future__ import annotations

from neuralake.lab.bench.acceptance import Benchmark, Check, at_least, below

#: The issue's targets for the Rust writer's freshness.
TARGETS = {
    "rate": 10_000,  # messages per second, with the default 1 s flush
    "p99_s": 2.0,
}


def checks(run: dict) -> list[Check]:
    """``benchmarks/writer_freshness.py``: how old a row is when a reader first sees it.

    The target is the Rust writer's; a Python baseline run is shown without one.
    """
    rust = run["writer"] == "rust"
    rate, p99 = run["rate"], run["p99_s"]
    figures = [Check("writer", "Rust" if rust else "Python baseline")]
    if rust:
        figures.append(
            at_least("producer rate, requested", rate, TARGETS["rate"], "{:,.0f}", " msg/s")
        )
    else:
        figures.append(Check("producer rate, requested", f"{rate:,.0f} msg/s"))
    figures += [
        Check("producer rate, achieved", f"{run['producer_messages_per_s']:,.0f} msg/s"),
        Check("flush interval", f"{run['flush_ms']:,} ms"),
        Check("rows seen by the reader", f"{run['rows']:,}"),
        Check("freshness p50", "-" if run["p50_s"] is None else f"{run['p50_s']:.2f} s"),
    ]
    if rust:
        figures.append(below("freshness p99", p99, TARGETS["p99_s"], "{:.2f}", " s"))
    else:
        figures.append(Check("freshness p99", "-" if p99 is None else f"{p99:.2f} s"))
    figures.append(Check("freshness max", "-" if run["max_s"] is None else f"{run['max_s']:.2f} s"))
    return figures


BENCHMARK = Benchmark(
    "Rust writer: freshness as a reader sees it",
    "writer_freshness",
    "benchmarks/writer_freshness.py --rate 10000 --seconds 30",
    checks,
)
