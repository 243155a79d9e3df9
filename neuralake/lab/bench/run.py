"""Run a suite: each engine registers the tables, warms up, then runs each query N times.

For every engine and query: one warm-up run (its answer is kept for
:mod:`neuralake.lab.bench.verify`; its time is not reported, since it includes first-use
costs such as Spark compiling code or a cold S3 connection pool), then ``runs`` timed
runs (``runs=0``: answers only, and the one time kept is the warm-up's). The report
gives the median and the spread (min and max). Each answer is
checked against the first engine's as soon as it arrives, and nothing is returned
unless all agree, so a wrong fast engine never makes it into a result file.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from functools import partial

import polars as pl
import psutil
from tqdm.auto import tqdm

from neuralake.lab.bench import verify
from neuralake.lab.bench.engines import ENGINES
from neuralake.lab.bench.queries import Query
from neuralake.settings import Settings

PACKAGES = ("polars", "datafusion", "duckdb", "pyspark", "deltalake", "pyarrow", "tpchgen-cli")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU model, cores, memory, OS, Python, package versions and the current load."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _timed(run: Callable[[], pl.DataFrame]) -> tuple[float, pl.DataFrame]:
    started = time.perf_counter()
    frame = run()
    return time.perf_counter() - started, frame


def run_suite(
    settings: Settings,
    suite: str,
    scale: float,
    tables: dict[str, str],
    queries: Sequence[Query],
    engines: Sequence[str],
    runs: int = 3,
    progress: bool = True,
    engine_options: dict[str, dict] | None = None,
) -> dict:
    """Run ``queries`` on ``engines``; return the result document (see report.py).

    Raises :class:`neuralake.lab.bench.verify.MismatchError` if any two engines disagree.
    """
    load_before = [round(x, 2) for x in os.getloadavg()]
    answers: dict[str, dict[str, pl.DataFrame]] = {q.name: {} for q in queries}
    rows: list[dict] = []
    setup: dict[str, float] = {}
    load_by_engine: dict[str, list[float]] = {}  # 1-minute load when each engine began and ended
    bar = tqdm(total=len(engines) * len(queries), disable=not progress, unit="query")
    for name in engines:
        load_by_engine[name] = [round(os.getloadavg()[0], 2)]
        started = time.perf_counter()
        engine = ENGINES[name](settings, **(engine_options or {}).get(name, {}))
        engine.register(tables)
        setup[name] = round(time.perf_counter() - started, 3)
        try:
            for query in queries:
                bar.set_description(f"{name} {query.name}")
                warmup, answer = _timed(partial(engine.run, query))
                answers[query.name][name] = answer
                verify.check(query.name, answers[query.name])  # fail fast, not after an hour
                # runs=0 checks answers only: the one time kept is the warm-up's.
                times = [_timed(partial(engine.run, query))[0] for _ in range(runs)] or [warmup]
                rows.append(
                    {
                        "query": query.name,
                        "engine": name,
                        "warmup_s": round(warmup, 4),
                        "times_s": [round(t, 4) for t in times],
                        "median_s": round(statistics.median(times), 4),
                        "min_s": round(min(times), 4),
                        "max_s": round(max(times), 4),
                        "rows": answer.height,
                    }
                )
                bar.update()
        finally:
            engine.close()
            load_by_engine[name].append(round(os.getloadavg()[0], 2))
    bar.close()
    machine = machine_info()
    machine["load_average_before"] = load_before
    machine["load_average_after"] = machine.pop("load_average")
    machine["load_average_by_engine"] = load_by_engine
    return {
        "suite": suite,
        "scale": scale,
        "runs": runs,
        "warmup_runs": 1,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "profile": settings.profile,
        "tables": tables,
        "engines": list(engines),
        "setup_s": setup,
        "verified": True,
        "machine": machine,
        "results": rows,
    }
