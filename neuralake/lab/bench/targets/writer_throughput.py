"""``benchmarks/writer_throughput.py``: its targets and how the report reads one run."""

from __future__ import annotations

from neuralake.lab.bench.acceptance import Benchmark, Check, at_least

#: The targets for catching up on a preloaded topic, side by side in one run.
TARGETS = {
    "messages": 2_000_000,  # "a preloaded topic (at least 2 million messages)"
    "rust_messages_per_s": 100_000,
    "fraction_of_consume": 0.65,  # Rust catch-up / raw Kafka consume on the same machine
    "fraction_moonshot": 0.8,
    "speedup": 5.0,  # over the Python baseline on the same topic
}


def checks(run: dict) -> list[Check]:
    """``benchmarks/writer_throughput.py``: catch-up of a preloaded topic, Rust vs Python."""
    rust = run["rust"]["messages_per_s"]
    ceiling = run["ceiling"]["messages_per_s"]
    fraction = rust / ceiling
    figures = [
        at_least("messages in the preloaded topic", run["messages"], TARGETS["messages"], "{:,}"),
        at_least("Rust writer", rust, TARGETS["rust_messages_per_s"], "{:,}", " msg/s"),
        Check("raw Kafka consume (the ceiling)", f"{round(ceiling):,} msg/s"),
        at_least("Rust / consume ceiling", fraction, TARGETS["fraction_of_consume"], "{:.2f}"),
        Check(
            "Rust / consume ceiling, moonshot",
            "reached" if fraction >= TARGETS["fraction_moonshot"] else "not reached",
            f">= {TARGETS['fraction_moonshot']:.2f}",
        ),
    ]
    if "python" in run:
        python = run["python"]["messages_per_s"]
        figures.append(Check("Python baseline, same topic", f"{python:,} msg/s"))
        figures.append(at_least("Rust / Python", rust / python, TARGETS["speedup"], "{:.2f}", "x"))
    else:  # --skip-python: the ratio was not measured, so the target is not shown to hold
        figures.append(
            Check("Rust / Python", "not measured", f">= {TARGETS['speedup']:.2f}x", False)
        )
    for side in ("rust", "python"):
        rss = run.get(side, {}).get("peak_rss_mib")
        if rss is not None:
            figures.append(Check(f"peak memory, {side.capitalize()} (VmHWM)", f"{rss:,.0f} MiB"))
    if "decoders" in run:
        figures.append(Check("decoder threads (Rust)", str(run["decoders"])))
    waited = run["rust"].get("waited_for_commits_s")
    if waited is not None:  # a pipeline bound by uploads and commits shows here
        seconds = run["rust"]["seconds"]
        figures.append(Check("Rust reader waiting for commits", f"{waited:.2f} of {seconds:.2f} s"))
    return figures


BENCHMARK = Benchmark(
    "Rust writer: catch-up of a preloaded topic",
    "writer_throughput",
    "benchmarks/writer_throughput.py --messages 2000000",
    checks,
)
