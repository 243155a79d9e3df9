"""``benchmarks/writer_freshness.py``: its targets and how the report reads one run."""

from __future__ import annotations

from neuralake.lab.bench.acceptance import Benchmark, Check, at_least

#: The targets for the Rust writer's freshness: p99 within the flush interval plus a margin,
#: at 10k msg/s, with the default 1 s flush and with a 200 ms one.
TARGETS = {
    "rate": 10_000,  # messages per second
    "p99_over_flush_s": 0.15,  # p99 <= flush interval + this
}
#: The flush intervals the benchmark runs by default, one writer each.
FLUSH_MS = (1000, 200)


def p99_target_s(flush_ms: int) -> float:
    """The p99 freshness target for a flush interval: flush + 150 ms."""
    return flush_ms / 1000 + TARGETS["p99_over_flush_s"]


def checks(run: dict) -> list[Check]:
    """``benchmarks/writer_freshness.py``: how old a row is when a reader first sees it.

    The target is the Rust writer's; a Python baseline run is shown without one.
    """
    rust = run["writer"] == "rust"
    rate, p99, flush_ms = run["rate"], run["p99_s"], run["flush_ms"]
    figures = [Check("writer", "Rust" if rust else "Python baseline")]
    if rust:
        figures.append(
            at_least("producer rate, requested", rate, TARGETS["rate"], "{:,.0f}", " msg/s")
        )
    else:
        figures.append(Check("producer rate, requested", f"{rate:,.0f} msg/s"))
    figures += [
        Check("producer rate, achieved", f"{run['producer_messages_per_s']:,.0f} msg/s"),
        Check("flush interval", f"{flush_ms:,} ms"),
        Check("rows seen by the reader", f"{run['rows']:,}"),
        Check("freshness p50", "-" if run["p50_s"] is None else f"{run['p50_s']:.2f} s"),
    ]
    if rust:
        target = p99_target_s(flush_ms)
        figures.append(
            Check("freshness p99", "nothing measured", f"<= {target:.2f} s", False)
            if p99 is None
            else Check("freshness p99", f"{p99:.2f} s", f"<= {target:.2f} s", p99 <= target)
        )
    else:
        figures.append(Check("freshness p99", "-" if p99 is None else f"{p99:.2f} s"))
    figures.append(Check("freshness max", "-" if run["max_s"] is None else f"{run['max_s']:.2f} s"))
    rss = run.get("writer_peak_rss_mib")
    if rss is not None:
        figures.append(Check("peak memory, writer (VmHWM)", f"{rss:,.0f} MiB"))
    return figures


BENCHMARK = Benchmark(
    "Rust writer: freshness as a reader sees it",
    "writer_freshness",
    "benchmarks/writer_freshness.py --rate 10000 --seconds 30",
    checks,
)
