"""The suites behind ``neuralake bench``: prepare the data, run, verify, report.

``tpch``    the 22 TPC-H queries on Delta tables made by :mod:`neuralake.lab.bench.data`.
``neural``  scan, filter, join, aggregate and windowed spike counts on neural signals
            (:mod:`neuralake.lab.bench.neural`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from neuralake.lab.bench import ceiling, data, report
from neuralake.lab.bench.engines import engine_names
from neuralake.lab.bench.queries import tpch
from neuralake.lab.bench.run import run_suite
from neuralake.settings import Settings
from neuralake.settings import settings as load_settings


def spark_options(scale: float) -> dict[str, str]:
    """Spark's driver memory: the lab default (1 GiB) runs out of heap at SF1's joins."""
    return {"spark.driver.memory": "3g"} if scale >= 0.5 else {}


def run_and_report(
    suite: str,
    scale: float,
    engines: str,
    runs: int,
    out: Path,
    numbers: list[int] | None = None,
    with_ceiling: bool = True,
    progress: bool = True,
    settings: Settings | None = None,
    echo: Callable[[str], None] = print,
) -> Path:
    """Run one suite end to end and write ``out/results.json`` and the plots."""
    s = settings or load_settings()
    names = engine_names(engines)
    spark = {"extra": spark_options(scale)} if spark_options(scale) else {}
    options = {"spark": spark, "spark_cluster": spark} if spark else {}
    if suite == "neural":
        from neuralake.lab.bench import neural

        tables = neural.write_tables(s, scale, echo=echo)
        queries = neural.queries()
    else:
        tables = data.write_tables(s, scale, echo=echo)
        queries = tpch(scale, numbers)
    document = run_suite(
        s, suite, scale, tables, queries, names, runs, progress, engine_options=options
    )
    if suite == "tpch" and with_ceiling:
        echo("timing the ceiling: each query's columns read and decoded by pyarrow alone")
        # --runs 0 checks answers only: one read per query then, not a best of 3.
        document["ceiling"] = ceiling.measure(s, tables, queries, repeats=min(max(runs, 1), 3))
        document["ceiling"]["fraction_by_engine"] = ceiling.fractions(
            document["ceiling"], document["results"]
        )
    return report.write(document, out)
