"""TPC-H results on disk: ``results.json``, a Markdown table (``table.md``) and PNG plots.

Plots (matplotlib, no display needed):

- ``speedup_vs_spark.png``  per query, Spark's median time / each engine's median time.
- ``times_log.png``         per query, every engine's median time on a log scale.
- ``plain_read.png``        each engine's Q1 scan rate as a multiple of a plain pyarrow read.

Figures are built with ``matplotlib.figure.Figure``, not ``pyplot``: they need no display
and leave a notebook's inline backend alone.

The writer's and ROAPI's figures are not TPC-H's: their targets live beside their
benchmarks (:mod:`neuralake.lab.bench.targets`), and :mod:`neuralake.lab.bench.acceptance` writes
them into the same report.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from neuralake.lab.bench import acceptance
from neuralake.lab.bench.plain_read import multiples
from neuralake.lab.bench.targets import writer_freshness, writer_throughput


def medians(document: dict) -> pl.DataFrame:
    """One row per query, one column per engine: median seconds."""
    frame = pl.DataFrame(document["results"]).select("query", "engine", "median_s")
    wide = frame.pivot(on="engine", index="query", values="median_s").sort("query")
    return wide.select("query", *[e for e in document["engines"] if e in wide.columns])


def totals(document: dict) -> dict[str, float]:
    """Sum of the median times over all queries, per engine."""
    wide = medians(document)
    return {e: round(float(wide[e].sum()), 3) for e in wide.columns[1:]}


def speedups(document: dict, baseline: str = "spark") -> dict[str, float]:
    """Total time of ``baseline`` divided by each engine's total time."""
    total = totals(document)
    if baseline not in total:
        return {}
    return {e: round(total[baseline] / t, 2) for e, t in total.items() if t > 0}


def _grouped_bars(ax: Axes, wide: pl.DataFrame, engines: list[str]) -> None:
    width = 0.8 / max(len(engines), 1)
    x = range(wide.height)
    for i, engine in enumerate(engines):
        ax.bar([p + i * width for p in x], wide[engine].to_list(), width, label=engine)
    ax.set_xticks([p + width * (len(engines) - 1) / 2 for p in x], wide["query"].to_list())
    ax.tick_params(axis="x", labelrotation=90)
    ax.legend(loc="upper left", ncols=len(engines), fontsize="small")


def plot(document: dict, out: Path) -> list[Path]:
    """Write the PNG plots for ``document`` into ``out``; return their paths."""
    wide = medians(document)
    engines = wide.columns[1:]
    title = f"{document['suite']} SF{document['scale']:g}, median of {document['runs']} runs"
    written = []

    written.append(
        _save(
            _per_query(wide, engines, "median time (s, log scale)", f"Query times: {title}"),
            out / "times_log.png",
        )
    )
    if "spark" in engines:
        others = [e for e in engines if e != "spark"]
        ratio = wide.select("query", *[(pl.col("spark") / pl.col(e)).alias(e) for e in others])
        fig = _per_query(
            ratio,
            others,
            "speed-up against Spark (x, log scale)",
            f"Speed-up against Spark local mode: {title} (above 1 = faster)",
        )
        fig.axes[0].axhline(1, color="black", linewidth=0.8)
        written.append(_save(fig, out / "speedup_vs_spark.png"))
    if document.get("plain_read"):
        share = multiples(document["plain_read"], document["results"])
        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        ax.bar(list(share), list(share.values()))
        ax.axhline(1, color="black", linewidth=0.8)
        ax.set_ylabel("x the plain pyarrow read")
        ax.set_title("Q1 scan rate / plain pyarrow read-and-decode rate (S3)")
        written.append(_save(fig, out / "plain_read.png"))
    return written


def _per_query(wide: pl.DataFrame, engines: list[str], ylabel: str, title: str) -> Figure:
    """Grouped bars, one group per query, on a log scale."""
    fig = Figure(figsize=(12, 4.5))
    ax = fig.subplots()
    _grouped_bars(ax, wide, engines)
    ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write(document: dict, out: Path) -> Path:
    """Write ``results.json``, ``table.md`` and the plots into ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    (out / "table.md").write_text(markdown_table(document) + "\n")
    plot(document, out)
    return path


def markdown_table(document: dict) -> str:
    """Median seconds per query and engine, with totals and the speed-up against Spark."""
    wide = medians(document)
    engines = wide.columns[1:]
    lines = [
        "| query | " + " | ".join(engines) + " |",
        "|---|" + "---:|" * len(engines),
    ]
    for row in wide.iter_rows(named=True):
        best = min(row[e] for e in engines)
        cells = [f"**{row[e]:.3f}**" if row[e] == best else f"{row[e]:.3f}" for e in engines]
        lines.append(f"| {row['query']} | " + " | ".join(cells) + " |")
    total = totals(document)
    lines.append("| **total** | " + " | ".join(f"**{total[e]:.2f}**" for e in engines) + " |")
    speed = speedups(document)
    if speed:
        lines.append(
            "| speed-up vs Spark | " + " | ".join(f"{speed[e]:.1f}x" for e in engines) + " |"
        )
    return "\n".join(lines)


# Lesson 04 reads the writer's saved runs through these names, from before the targets
# moved beside their benchmarks.
load_runs = acceptance.load_runs
writer_throughput_checks = writer_throughput.checks
writer_freshness_checks = writer_freshness.checks
