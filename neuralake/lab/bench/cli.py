"""``neuralake bench``: run a suite, write results and plots; ``bench compare`` two runs;
``bench project`` fits two scales and projects a third; ``bench report`` puts the
writer's and ROAPI's figures into the TPC-H report.

Examples::

    neuralake bench --suite tpch --scale 0.01 --engines polars,duckdb --runs 3 --out build/bench
    neuralake bench compare docs/benchmarks/tpch-sf1/results.json build/bench/results.json
    neuralake bench project build/sf0_1/results.json docs/benchmarks/tpch-sf1/results.json
    neuralake bench report --out docs/benchmarks
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from neuralake.errors import ConfigError
from neuralake.lab.bench import acceptance, report
from neuralake.lab.bench import compare as compare_mod
from neuralake.lab.bench.targets import BENCHMARKS

app = typer.Typer(
    help="Benchmark Polars, DataFusion, DuckDB and Spark on the same Delta tables.",
    invoke_without_command=True,
    add_completion=False,
)

SUITES = ("tpch", "neural")


@app.callback()
def bench(
    ctx: typer.Context,
    suite: Annotated[str, typer.Option(help="tpch or neural.")] = "tpch",
    scale: Annotated[
        float, typer.Option(help="TPC-H scale factor (SF1 is 1 GB); neural: millions of rows.")
    ] = 0.01,
    engines: Annotated[
        str,
        typer.Option(
            help="Comma-separated: polars,datafusion,duckdb,spark (or duckdb_arrow, "
            "spark_cluster, roapi)."
        ),
    ] = "polars,datafusion,duckdb,spark",
    runs: Annotated[
        int, typer.Option(min=0, help="Timed runs after one warm-up (0: check answers only).")
    ] = 3,
    queries: Annotated[
        str | None, typer.Option(help="Only these TPC-H queries, e.g. 1,6,13.")
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for results.json and the plots.")] = Path(
        "build/bench"
    ),
    ceiling: Annotated[
        bool,
        typer.Option(help="Also time the ceiling: each query's columns read by pyarrow alone."),
    ] = True,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run a benchmark suite: warm-up, repeated runs, answers checked, JSON and PNGs."""
    if ctx.invoked_subcommand is not None:
        return
    from neuralake.lab.bench.suites import run_and_report

    if suite not in SUITES:
        raise ConfigError(f"unknown suite {suite!r}: choose tpch or neural")
    numbers = _query_numbers(queries)
    path = run_and_report(
        suite, scale, engines, runs, out, numbers, ceiling, progress, echo=typer.echo
    )
    document = compare_mod.load(path)
    typer.echo(report.markdown_table(document))
    typer.echo(f"results: {path}")


def _query_numbers(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--queries {text!r} is not a list of numbers: use e.g. 1,6,13") from None
    bad = [n for n in numbers if not 1 <= n <= 22]
    if bad:
        raise ConfigError(f"TPC-H has queries 1 to 22, not {bad}: use e.g. --queries 1,6")
    return numbers


@app.command("compare")
def compare(
    baseline: Annotated[Path, typer.Argument(help="The earlier results.json.")],
    new: Annotated[Path, typer.Argument(help="The new results.json.")],
    threshold: Annotated[
        float, typer.Option(help="Slower by more than this fraction is a regression.")
    ] = compare_mod.DEFAULT_THRESHOLD,
) -> None:
    """Flag queries slower than the baseline by more than the threshold; exit 1 if any."""
    old_doc, new_doc = compare_mod.load(baseline), compare_mod.load(new)
    changes = compare_mod.changes(old_doc, new_doc)
    if not changes:
        raise ConfigError(f"{baseline} and {new} share no (query, engine): compare like runs")
    slower = 0
    for change in changes:
        flag = change.regressed(threshold)
        slower += flag
        typer.echo(
            f"{change.query:<6} {change.engine:<11} {change.baseline_s:9.3f} s -> "
            f"{change.new_s:9.3f} s  x{change.ratio:5.2f}" + ("  SLOWER" if flag else "")
        )
    typer.echo(f"{slower} of {len(changes)} slower by more than {threshold:.0%}")
    if slower:
        raise typer.Exit(1)


@app.command("report")
def report_command(
    out: Annotated[
        Path,
        typer.Option(help="The benchmarks folder: holds the writer's and ROAPI's JSON results."),
    ] = Path("docs/benchmarks"),
    readme: Annotated[
        Path | None,
        typer.Option(help="The report to update (default: OUT/tpch-sf1/README.md)."),
    ] = None,
) -> None:
    """Write the writer's and ROAPI's figures (targets met or not, load) into the report."""
    if not out.is_dir():
        raise ConfigError(
            f"{out} is not a folder: pass the benchmarks folder, e.g. docs/benchmarks"
        )
    target = readme or out / "tpch-sf1" / "README.md"
    section = acceptance.section(BENCHMARKS, out, linked_from=target.parent)
    acceptance.update_section(target, section)
    typer.echo(section.split("\n\n", 1)[0])  # the summary table
    typer.echo(f"updated: {target}")


@app.command("project")
def project_command(
    small: Annotated[Path, typer.Argument(help="results.json of the smaller scale.")],
    large: Annotated[Path, typer.Argument(help="results.json of the larger scale.")],
    scale: Annotated[float, typer.Option(help="The scale factor to project to.")] = 10,
    out: Annotated[
        Path | None, typer.Option(help="Write the projection here as JSON (default: print).")
    ] = None,
) -> None:
    """Project a larger scale from two measured ones: fixed + per-row cost, per query."""
    import json

    from neuralake.lab.bench import projection

    result = projection.project(compare_mod.load(small), compare_mod.load(large), scale)
    if out:
        out.write_text(json.dumps(result, indent=1) + "\n")
    typer.echo(projection.markdown(result))
