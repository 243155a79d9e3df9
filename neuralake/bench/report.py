"""Results on disk: ``results.json``, a Markdown table (``table.md``) and PNG plots; and
the report's section on the writer's and ROAPI's figures, from their own benchmarks.

Plots (matplotlib, no display needed):

- ``speedup_vs_spark.png``  per query, Spark's median time / each engine's median time.
- ``times_log.png``         per query, every engine's median time on a log scale.
- ``ceiling.png``           each engine's Q1 scan rate as a fraction of the machine's.

Figures are built with ``matplotlib.figure.Figure``, not ``pyplot``: they need no display
and leave a notebook's inline backend alone.

The writer's and ROAPI's figures (:data:`BENCHMARKS`) come from four scripts in
``benchmarks/``, each saved as ``docs/benchmarks/<name>.json``. :func:`writer_and_roapi`
turns whichever of them exist into Markdown: one small table per benchmark with each
figure, the issue's target and whether it is met, and the load average the run recorded
(on a shared 2-core machine the load moves every number). A missing file is reported as
"not run", never left out. ``neuralake bench report`` writes that Markdown between two
marker lines of the TPC-H report (:func:`update_section`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from matplotlib.figure import Figure

from neuralake.bench.ceiling import fractions
from neuralake.errors import ConfigError


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


def _grouped_bars(ax, wide: pl.DataFrame, engines: list[str]) -> None:
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

    fig = Figure(figsize=(12, 4.5))
    ax = fig.subplots()
    _grouped_bars(ax, wide, engines)
    ax.set_yscale("log")
    ax.set_ylabel("median time (s, log scale)")
    ax.set_title(f"Query times: {title}")
    fig.tight_layout()
    written.append(out / "times_log.png")
    fig.savefig(written[-1], dpi=110)

    if "spark" in engines:
        others = [e for e in engines if e != "spark"]
        ratio = wide.select("query", *[(pl.col("spark") / pl.col(e)).alias(e) for e in others])
        fig = Figure(figsize=(12, 4.5))
        ax = fig.subplots()
        _grouped_bars(ax, ratio, others)
        ax.axhline(1, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("speed-up against Spark (x, log scale)")
        ax.set_title(f"Speed-up against Spark local mode: {title} (above 1 = faster)")
        fig.tight_layout()
        written.append(out / "speedup_vs_spark.png")
        fig.savefig(written[-1], dpi=110)

    if document.get("ceiling"):
        share = fractions(document["ceiling"], document["results"])
        fig = Figure(figsize=(6, 3.5))
        ax = fig.subplots()
        ax.bar(list(share), list(share.values()))
        ax.axhline(1, color="black", linewidth=0.8)
        ax.set_ylabel("fraction of the scan ceiling")
        ax.set_title("Q1 scan rate / pyarrow read-and-decode rate")
        fig.tight_layout()
        written.append(out / "ceiling.png")
        fig.savefig(written[-1], dpi=110)
    return written


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


# The writer's and ROAPI's figures, from their own benchmarks ------------------------------

# The targets.
CATCH_UP_MESSAGES = 2_000_000  # "a preloaded topic (at least 2 million messages)"
CATCH_UP_MESSAGES_PER_S = 100_000
CATCH_UP_SPEEDUP = 5.0  # over the Python baseline on the same topic
FRESHNESS_RATE = 10_000  # messages per second, with the default 1 s flush
FRESHNESS_P99_S = 2.0
COMPACTION_SPEEDUP = 5.0  # one-partition read, open + scan, after vs before compaction
API_ROWS = 10_000_000
API_P99_MS = 50.0  # point and filter queries, and ahead of the FastAPI baseline

MARK_START = "<!-- neuralake bench report: the writer's and ROAPI's figures start -->"
MARK_END = "<!-- neuralake bench report: the writer's and ROAPI's figures end -->"


@dataclass(frozen=True)
class Check:
    """One figure of one run: its value as text, the target, and whether the run meets it.

    ``met`` is None for a figure reported without a target (a baseline, a file count).
    """

    measure: str
    value: str
    target: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class Benchmark:
    """Where one benchmark's result lives, how to regenerate it, how to read one run."""

    title: str
    name: str  # the result is docs/benchmarks/<name>.json
    command: str
    checks: Callable[[dict], list[Check]]

    @property
    def file(self) -> str:
        return f"{self.name}.json"


def _at_least(measure: str, value: float, target: float, fmt: str, unit: str = "") -> Check:
    return Check(
        measure, fmt.format(value) + unit, ">= " + fmt.format(target) + unit, value >= target
    )


def _below(measure: str, value: float | None, target: float, fmt: str, unit: str = "") -> Check:
    if value is None:
        return Check(measure, "nothing measured", "< " + fmt.format(target) + unit, False)
    return Check(
        measure, fmt.format(value) + unit, "< " + fmt.format(target) + unit, value < target
    )


def writer_throughput_checks(run: dict) -> list[Check]:
    """``benchmarks/writer_throughput.py``: catch-up of a preloaded topic, Rust vs Python."""
    rust = run["rust"]["messages_per_s"]
    checks = [
        _at_least("messages in the preloaded topic", run["messages"], CATCH_UP_MESSAGES, "{:,}"),
        _at_least("Rust writer", rust, CATCH_UP_MESSAGES_PER_S, "{:,}", " msg/s"),
    ]
    if "python" in run:
        python = run["python"]["messages_per_s"]
        checks.append(Check("Python baseline, same topic", f"{python:,} msg/s"))
        checks.append(_at_least("Rust / Python", rust / python, CATCH_UP_SPEEDUP, "{:.2f}", "x"))
    else:  # --skip-python: the ratio was not measured, so the target is not shown to hold
        checks.append(Check("Rust / Python", "not measured", f">= {CATCH_UP_SPEEDUP:.2f}x", False))
    ceiling = run["ceiling"]["messages_per_s"]
    checks.append(Check("raw Kafka consume (the ceiling)", f"{round(ceiling):,} msg/s"))
    checks.append(Check("Rust / consume ceiling", f"{rust / ceiling:.2f}", "reported"))
    return checks


def writer_freshness_checks(run: dict) -> list[Check]:
    """``benchmarks/writer_freshness.py``: how old a row is when a reader first sees it.

    The target is the Rust writer's; a Python baseline run is shown without one.
    """
    rust = run["writer"] == "rust"
    rate, p99 = run["rate"], run["p99_s"]
    checks = [Check("writer", "Rust" if rust else "Python baseline")]
    if rust:
        checks.append(
            _at_least("producer rate, requested", rate, FRESHNESS_RATE, "{:,.0f}", " msg/s")
        )
    else:
        checks.append(Check("producer rate, requested", f"{rate:,.0f} msg/s"))
    checks += [
        Check("producer rate, achieved", f"{run['producer_messages_per_s']:,.0f} msg/s"),
        Check("flush interval", f"{run['flush_ms']:,} ms"),
        Check("rows seen by the reader", f"{run['rows']:,}"),
        Check("freshness p50", "-" if run["p50_s"] is None else f"{run['p50_s']:.2f} s"),
    ]
    if rust:
        checks.append(_below("freshness p99", p99, FRESHNESS_P99_S, "{:.2f}", " s"))
    else:
        checks.append(Check("freshness p99", "-" if p99 is None else f"{p99:.2f} s"))
    checks.append(Check("freshness max", "-" if run["max_s"] is None else f"{run['max_s']:.2f} s"))
    return checks


def compaction_read_checks(run: dict) -> list[Check]:
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
        _at_least(
            "open + scan speed-up",
            before["open_scan_s"] / after["open_scan_s"],
            COMPACTION_SPEEDUP,
            "{:.2f}",
            "x",
        ),
        Check(
            "scan only, median", f"{before['scan_only_s']:.3f} s -> {after['scan_only_s']:.3f} s"
        ),
        Check("scan only speed-up", f"{before['scan_only_s'] / after['scan_only_s']:.1f}x"),
    ]


def _ms(value: float) -> str:
    """Milliseconds: whole above 100 ms, one decimal below (where 50 ms targets live)."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


SERVERS = {
    "roapi_provider": "ROAPI provider",
    "roapi_memory": "ROAPI memory",
    "roapi_memory_8192_row_batches": "ROAPI memory, 8,192-row batches",
    "fastapi_polars": "FastAPI + Polars",
}
TARGET_KINDS = ("point", "filter")


def api_latency_checks(run: dict) -> list[Check]:
    """``benchmarks/api_latency.py``: query latency of ROAPI's modes and the FastAPI baseline.

    The target holds when one ROAPI mode (the catalog picks the mode per table) answers point
    and filter queries with p99 under 50 ms on 10M rows, and faster than FastAPI at p99.
    """
    latency: dict[str, dict] = run["latency"]
    roapi = [name for name in latency if name.startswith("roapi")]
    fastapi = next((name for name in latency if name.startswith("fastapi")), None)
    if not roapi:
        raise KeyError("latency.roapi_*")
    commits = run["writer_commits_during_run"]
    checks = [
        _at_least("rows in the live table", run["rows"], API_ROWS, "{:,}"),
        Check("writer commits during the run", f"{commits:,}", "> 0 (kept fresh)", commits > 0),
    ]
    for name, kinds in latency.items():
        shown = " / ".join(_ms(kinds[kind]["p99_ms"]) for kind in kinds)
        checks.append(Check(f"{SERVERS.get(name, name)}: p99 {' / '.join(kinds)}", f"{shown} ms"))

    def p99(name: str) -> list[float]:
        return [latency[name][kind]["p99_ms"] for kind in TARGET_KINDS]

    def ahead(name: str) -> bool:
        return fastapi is not None and all(
            r < f for r, f in zip(p99(name), p99(fastapi), strict=True)
        )

    def under(name: str) -> bool:
        return max(p99(name)) < API_P99_MS

    best = min(roapi, key=lambda name: (-(under(name) + ahead(name)), max(p99(name))))
    label = SERVERS.get(best, best)
    shown = " / ".join(_ms(ms) for ms in p99(best))
    checks.append(
        Check(
            "best ROAPI mode: p99 point / filter",
            f"{label}: {shown} ms",
            f"< {API_P99_MS:.0f} ms each",
            under(best),
        )
    )
    if fastapi is None:
        checks.append(
            Check("ROAPI ahead of FastAPI", "FastAPI not measured", "faster at p99", False)
        )
    else:
        versus = " / ".join(
            f"{_ms(r)} vs {_ms(f)}" for r, f in zip(p99(best), p99(fastapi), strict=True)
        )
        checks.append(
            Check(
                "ahead of FastAPI: p99 point / filter", f"{versus} ms", "faster at p99", ahead(best)
            )
        )
    return checks


BENCHMARKS = (
    Benchmark(
        "Rust writer: catch-up of a preloaded topic",
        "writer_throughput",
        "benchmarks/writer_throughput.py --messages 2000000",
        writer_throughput_checks,
    ),
    Benchmark(
        "Rust writer: freshness as a reader sees it",
        "writer_freshness",
        "benchmarks/writer_freshness.py --rate 10000 --seconds 30",
        writer_freshness_checks,
    ),
    Benchmark(
        "Rust writer: one-partition read after compaction",
        "compaction_read",
        "benchmarks/compaction_read.py",
        compaction_read_checks,
    ),
    Benchmark(
        "ROAPI: hot-path query latency on 10M rows, against FastAPI + Polars",
        "api_latency",
        "benchmarks/api_latency.py --rows 10000000",
        api_latency_checks,
    ),
)


def load_runs(path: Path) -> list[dict] | None:
    """The runs saved in a benchmark's result file; None when the file does not exist.

    The file holds a script's stdout: one JSON object, a JSON list of runs, or several runs
    one after the other (``>>``); text lines around them (``compaction_read.py`` prints a
    table before its JSON line) are skipped.
    """
    if not path.exists():
        return None
    text, decoder, runs, at = path.read_text(), json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at] in "{[":
            try:
                value, at = decoder.raw_decode(text, at)
            except json.JSONDecodeError as err:
                raise ConfigError(
                    f"{path}: broken JSON ({err.msg}, line {err.lineno}): re-run the benchmark"
                ) from None
            runs.extend(value if isinstance(value, list) else [value])
        else:
            end = text.find("\n", at)
            at = len(text) if end < 0 else end + 1
    if not runs or not all(isinstance(run, dict) for run in runs):
        raise ConfigError(f"{path} holds no JSON result: save the benchmark's output there")
    return runs


def _checks(benchmark: Benchmark, path: Path, runs: list[dict]) -> list[list[Check]]:
    try:
        return [benchmark.checks(run) for run in runs]
    except (KeyError, TypeError) as err:
        raise ConfigError(
            f"{path} lacks the field {err}: it is not the output of {benchmark.command.split()[0]}"
        ) from None


def _load(run: dict) -> str:
    """The 1-minute load average the run recorded: at its end, or at its start and end."""
    if "load_average_1m_start_end" in run:
        start, end = run["load_average_1m_start_end"]
        return f"{start:g} -> {end:g}"
    load = run.get("load_average_1m")
    return "not recorded" if load is None else f"{load:g}"


def _verdict(per_run: list[list[Check]]) -> str:
    """ "met", or "not met: " and the figures that missed (with the runs, if several)."""
    missed: dict[str, list[int]] = {}
    for number, checks in enumerate(per_run, 1):
        for check in checks:
            if check.met is False:
                missed.setdefault(check.measure, []).append(number)
    if not missed:
        return "**met**"
    if len(per_run) == 1:
        return "**not met**: " + "; ".join(missed)
    return "**not met**: " + "; ".join(
        f"{measure} (run{'s' if len(runs) > 1 else ''} {', '.join(map(str, runs))})"
        for measure, runs in missed.items()
    )


def _table(per_run: list[list[Check]], runs: list[dict]) -> list[str]:
    """Rows: figures; columns: the target, then one per run."""
    measures: dict[str, str] = {}
    cells: list[dict[str, str]] = []
    for checks in per_run:
        row = {}
        for check in checks:
            measures.setdefault(check.measure, check.target)
            mark = {True: " **met**", False: " **not met**", None: ""}[check.met]
            row[check.measure] = check.value + mark
        cells.append(row)
    heads = ["value"] if len(runs) == 1 else [f"run {n}" for n in range(1, len(runs) + 1)]
    lines = [
        "| figure | target | " + " | ".join(heads) + " |",
        "|---|---|" + "---:|" * len(heads),
    ]
    for measure, target in measures.items():
        values = " | ".join(row.get(measure, "") for row in cells)
        lines.append(f"| {measure} | {target} | {values} |")
    lines.append("| load average, 1 min (2 cores) | | " + " | ".join(map(_load, runs)) + " |")
    return lines


def writer_and_roapi(folder: Path, linked_from: Path | None = None) -> str:
    """The report's section on the writer's and ROAPI's figures, as Markdown.

    Reads ``folder/<name>.json`` for each of :data:`BENCHMARKS`; links to them relative to
    ``linked_from`` (the folder of the page the section goes in; default ``folder``).
    """
    base = linked_from or folder
    summary = [
        "| benchmark | result | runs | target | load average, 1 min |",
        "|---|---|---:|---|---|",
    ]
    details: list[str] = []
    for benchmark in BENCHMARKS:
        path = folder / benchmark.file
        link = f"[`{benchmark.file}`]({Path(os.path.relpath(path, base)).as_posix()})"
        save = f"`.venv/bin/python {benchmark.command} > {path.as_posix()}`"
        runs = load_runs(path)
        details += ["", f"### {benchmark.title}", ""]
        if runs is None:
            summary.append(f"| {benchmark.title} | `{benchmark.file}` | 0 | **not run** | |")
            details.append(f"**Not run**: no `{benchmark.file}` yet. Run {save}.")
            continue
        per_run = _checks(benchmark, path, runs)
        loads = ", ".join(map(_load, runs))
        summary.append(
            f"| {benchmark.title} | {link} | {len(runs)} | {_verdict(per_run)} | {loads} |"
        )
        details.append(f"From {link}; regenerate: {save}.")
        details += ["", *_table(per_run, runs)]
    return "\n".join(summary + details)


def update_section(readme: Path, section: str) -> None:
    """Replace the text between :data:`MARK_START` and :data:`MARK_END` in ``readme``."""
    text = readme.read_text() if readme.exists() else ""
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start < 0 or end < start:
        raise ConfigError(
            f"{readme} has no generated section: add the lines {MARK_START} and {MARK_END}"
        )
    head, tail = text[: start + len(MARK_START)], text[end:]
    readme.write_text(f"{head}\n\n{section}\n\n{tail}")
