"""TPC-H results on disk: ``results.json``, a Markdown table (``table.md``) and PNG plots.

Plots (matplotlib, no display needed):

- ``speedup_vs_spark.png``  per query, Spark's median time / each engine's median time.
- ``times_log.png``         per query, every engine's median time on a log scale.
- ``ceiling.png``           per query, the ceiling's time / each engine's time (1 = as fast
                            as reading the query's columns with pyarrow alone).

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
from neuralake.lab.bench.ceiling import fractions
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
    if document.get("ceiling"):
        reads = {q: v["read_s"] for q, v in document["ceiling"]["queries"].items()}
        share = wide.filter(pl.col("query").is_in(list(reads))).select(
            "query",
            *[
                (pl.col("query").replace_strict(reads, return_dtype=pl.Float64) / pl.col(e)).alias(
                    e
                )
                for e in engines
            ],
        )
        whole = fractions(document["ceiling"], document["results"])
        fig = _per_query(
            share,
            engines,
            "ceiling time / engine time (log scale)",
            f"Fraction of the ceiling (pyarrow reading each query's columns): {title}\nin total: "
            + ", ".join(f"{e} {whole[e]:.2f}" for e in engines if e in whole),
        )
        fig.axes[0].axhline(1, color="black", linewidth=0.8)
        written.append(_save(fig, out / "ceiling.png"))
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


TABLE_MARKS = (
    "<!-- neuralake bench: the results table starts -->",
    "<!-- neuralake bench: the results table ends -->",
)


def write(document: dict, out: Path) -> Path:
    """Write ``results.json``, ``table.md`` and the plots into ``out`` (created if missing),
    and the table into ``out/README.md`` between :data:`TABLE_MARKS`, if it has them."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(document, indent=1) + "\n")
    (out / "table.md").write_text(markdown_table(document) + "\n")
    plot(document, out)
    readme = out / "README.md"
    if readme.exists() and TABLE_MARKS[0] in readme.read_text():
        acceptance.update_section(
            readme, run_line(document) + "\n\n" + markdown_table(document), TABLE_MARKS
        )
    return path


def run_line(document: dict) -> str:
    """When the run was made, and how busy the machine was: what every number needs."""
    machine = document["machine"]
    before, after = machine["load_average_before"][0], machine["load_average_after"][0]
    return (
        f"Run of {document['created']} (`results.json`): SF{document['scale']:g}, median of "
        f"{document['runs']} runs after 1 warm-up, {machine['logical_cores']} cores, "
        f"**load average {before:.1f} before and {after:.1f} after** (1 minute)."
    )


def markdown_table(document: dict) -> str:
    """Median seconds per query and engine (fastest in bold), the ceiling's read time
    beside them, totals, the speed-up against Spark and each engine's fraction of the
    ceiling, then the targets."""
    wide = medians(document)
    engines = wide.columns[1:]
    reads = {q: v["read_s"] for q, v in document.get("ceiling", {}).get("queries", {}).items()}
    first = ["ceiling (read)"] if reads else []
    lines = [
        "| query | " + " | ".join(first + engines) + " |",
        "|---|" + "---:|" * (len(first) + len(engines)),
    ]
    for row in wide.iter_rows(named=True):
        best = min(row[e] for e in engines)
        cells = [f"{reads[row['query']]:.3f}"] if reads else []
        cells += [f"**{row[e]:.3f}**" if row[e] == best else f"{row[e]:.3f}" for e in engines]
        lines.append(f"| {row['query']} | " + " | ".join(cells) + " |")
    total = totals(document)
    ceiling_total = [f"{sum(reads.values()):.2f}"] if reads else []
    lines.append(
        "| **total** | "
        + " | ".join(ceiling_total + [f"**{total[e]:.2f}**" for e in engines])
        + " |"
    )
    speed = speedups(document)
    if speed:
        lines.append(
            "| speed-up vs Spark local | "
            + " | ".join(([""] if reads else []) + [f"{speed[e]:.1f}x" for e in engines])
            + " |"
        )
    if reads:
        share = fractions(document["ceiling"], document["results"])
        lines.append(
            "| fraction of the ceiling | 1.00 | "
            + " | ".join(f"{share[e]:.2f}" for e in engines)
            + " |"
        )
    checks = targets(document)
    if checks:
        lines += ["", "| target | value | met |", "|---|---:|---|"]
        lines += [
            f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in checks
        ]
    return "\n".join(lines)


SPEEDUP_TARGET = 10.0  # Polars and DataFusion against Spark local, in total
DUCKDB_TARGET = 1.2  # Polars and DataFusion against DuckDB's own reader, in total


def targets(document: dict) -> list[tuple[str, str, bool]]:
    """The issue's targets, for the engines this document has: (target, value, met).

    Reported, never asserted: a benchmark measures, and the load moves every number.
    """
    total, checks = totals(document), []
    for engine in ("polars", "datafusion"):
        if engine not in total:
            continue
        if "spark" in total:
            ratio = total["spark"] / total[engine]
            checks.append(
                (
                    f"{engine} >= {SPEEDUP_TARGET:g}x Spark local in total",
                    f"{ratio:.1f}x",
                    ratio >= SPEEDUP_TARGET,
                )
            )
        if "duckdb" in total:
            ratio = total[engine] / total["duckdb"]
            checks.append(
                (
                    f"{engine} within {DUCKDB_TARGET:g}x of DuckDB's own reader (time / DuckDB's)",
                    f"{ratio:.2f}x",
                    ratio <= DUCKDB_TARGET,
                )
            )
    return checks


# Lesson 04 reads the writer's saved runs through these names, from before the targets
# moved beside their benchmarks.
load_runs = acceptance.load_runs
writer_throughput_checks = writer_throughput.checks
writer_freshness_checks = writer_freshness.checks
