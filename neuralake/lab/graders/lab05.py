"""Lab 05, the hot path: what to serve, how ROAPI should hold it, and proof that it is fast.

``setup()`` writes every exercise's tables: a bronze-shaped table (partitioned by
``date``, like the writer's), a per-channel summary of it (the serving table the later
exercises query, so none of them depends on exercise 1), two small tables for the
serving-mode decisions, and a copy of bronze for the layout exercise. The graders read
the truth from the Delta tables with Polars and start their own ROAPI (the library's
:func:`neuralake.lab.api.server.roapi`, on free ports) inside the check, so that the lab
never changes the stack's ROAPI and leaves no process running. A number is only
accepted when the grader measured it.
"""

from __future__ import annotations

import os
import tempfile
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
from deltalake import DeltaTable, write_deltalake

from neuralake import delta
from neuralake.api import explain, latency
from neuralake.api.client import RoapiClient
from neuralake.api.sample import SESSIONS, bronze_rows, day
from neuralake.catalog import Catalog, DeltalakeTable, ModuleDatabase
from neuralake.catalog.errors import CatalogError
from neuralake.catalog.export import export_catalog
from neuralake.catalog.roapi import roapi_config
from neuralake.lab.api.server import Listeners, delta_entry, roapi
from neuralake.lab.graders.base import Lab, TableName, TableUri
from neuralake.lab.graders.checks import Hint, passed
from neuralake.settings import Settings
from neuralake.streaming.schemas import PARTITION_BY

SEED = 55
#: Exercise 5's budget, the dashboard's objective over CALLS calls: p50 and p95 in ms.
#: Measured with 300 calls on the lab's default data (6,398 summary rows, written as
#: SERVING_COMMITS files) on a 2-core machine shared with other jobs. At a load average
#: of 9-11 (the grader's own runs): the summary in memory p50 4.3-6.6 ms, p95 13-17 ms;
#: as a provider p50 87-102 ms, p95 192-206 ms. At 12-16: memory p50 6.7-10 ms, p95
#: 17-31 ms (p99 26-126 ms: too noisy at that load to hold a budget to); provider p50
#: 122-222 ms (one compacted file: p50 29-49 ms). The budget sits between the modes with
#: a margin of about 3x on each side, so the mode decides.
BUDGET_P50_MS = 30.0
BUDGET_P95_MS = 100.0
CALLS = 300
LAYOUT_COMMITS = 16  # small files in exercise 4's table
SERVING_COMMITS = 16  # the summary job appends one commit per bank of 4 channels
MAX_OPENED_SHARE = 1 / 3  # exercise 4: a session's query may open this share of the files


@dataclass
class Lab05(Lab):
    """Lab 05's run (see :class:`~neuralake.lab.graders.base.Lab`): its table names (also the
    names ROAPI serves them as) and the session exercise 3 asks about."""

    number: ClassVar[str] = "05"
    exercises: ClassVar[tuple[str, ...]] = ("ex1", "ex2", "ex3", "ex4", "ex5")
    tables: ClassVar[tuple[str, ...]] = (
        "bronze",
        "channel_summary",
        "serving",
        "devices",
        "alerts",
        "layout",
    )
    rows: int = 50_000  # bronze rows (and rows of exercise 4's copy)
    session: int = 7  # the session exercise 3's text asks about

    def name(self, table: str) -> str:
        return self.prefix + table

    def uri(self, table: str) -> str:
        return self.settings.table_uri(self.name(table))

    bronze = TableName("bronze")
    summary = TableName("channel_summary")
    serving = TableName("serving")
    devices = TableName("devices")
    alerts = TableName("alerts")
    bronze_uri = TableUri("bronze")
    summary_uri = TableUri("channel_summary")
    serving_uri = TableUri("serving")
    layout_uri = TableUri("layout")

    def rebuild(self, exercise: str) -> None:
        BUILDERS[exercise](self)


def setup(s: Settings, prefix: str = "lab05_", rows: int = 50_000, commits: int = 8) -> Lab05:
    """Write every exercise's tables from scratch (the summary of exercise 1 is left out)."""
    Lab05.forget_attempts()
    drop(s, prefix)
    lab = Lab05(s, prefix, rows=rows)
    _write_bronze(lab, lab.bronze_uri, commits)
    for build in BUILDERS.values():
        build(lab)
    return lab


def drop(s: Settings, prefix: str) -> None:
    """Delete every table of the lab."""
    Lab05.drop_tables(s, prefix)


def _write_bronze(lab: Lab05, uri: str, commits: int) -> None:
    """``rows`` bronze rows over two days, as ``commits`` small appends partitioned by date."""
    for i in range(commits):
        frame = bronze_rows(lab.rows // commits, seed=SEED + i, start=day(i % 2))
        frame.write_delta(
            uri,
            mode="append",
            storage_options=lab.storage_options,
            delta_write_options={"partition_by": PARTITION_BY},
        )


def truth(lab: Lab05) -> pl.DataFrame:
    """The summary computed from the bronze table: what exercise 1 must write."""
    return (
        pl.scan_delta(lab.bronze_uri, storage_options=lab.storage_options)
        .group_by("session_id", "channel")
        .agg(
            samples=pl.len().cast(pl.Int64),
            spikes=pl.col("spike").sum().cast(pl.Int64),
            mean_uv=pl.col("voltage_uv").mean().cast(pl.Float64),
        )
        .sort("session_id", "channel")
        .collect()
    )


def _build_ex1(lab: Lab05) -> None:
    """Exercise 1 starts without the summary table."""
    delta.drop_table(lab.summary_uri, lab.storage_options)


def _build_serving(lab: Lab05) -> None:
    """The summary the later exercises query, written by the lab (channel as Int32, the
    type lessons 06 and 08 use for served tables), as its job writes it: one commit per
    bank of channels, so each file holds every session."""
    frame = truth(lab).with_columns(pl.col("channel").cast(pl.Int32))
    uri = Lab05.fresh_table(lab.settings, lab.prefix, "serving")
    per_bank = 64 // SERVING_COMMITS
    for bank in range(SERVING_COMMITS):
        write_deltalake(
            uri,
            frame.filter(pl.col("channel") // per_bank == bank).to_arrow(),
            mode="append",
            storage_options=lab.storage_options,
        )


def _build_ex2(lab: Lab05) -> None:
    """The two small tables of the mode decisions (the summary and bronze are shared)."""
    _build_serving(lab)
    devices = pl.DataFrame(
        {
            "device_id": pl.Series(range(1, 11), dtype=pl.Int32),
            "firmware": [f"2.{i % 3}.0" for i in range(10)],
            "channels": pl.Series([64] * 10, dtype=pl.Int32),
        }
    )
    devices.write_delta(
        Lab05.fresh_table(lab.settings, lab.prefix, "devices"), storage_options=lab.storage_options
    )
    alerts_uri = Lab05.fresh_table(lab.settings, lab.prefix, "alerts")
    rng = np.random.default_rng(SEED)
    for i in range(8):  # an alerting job appends a little, often
        write_deltalake(
            alerts_uri,
            pl.DataFrame(
                {
                    "alert_id": pl.int_range(i * 500, (i + 1) * 500, eager=True),
                    "session_id": rng.integers(1, SESSIONS + 1, 500).astype(np.int32),
                    "channel": rng.integers(0, 64, 500).astype(np.int32),
                    "kind": rng.choice(["flat", "noisy", "saturated"], 500),
                }
            ).to_arrow(),
            mode="append",
            storage_options=lab.storage_options,
        )


def _build_ex4(lab: Lab05) -> None:
    """A copy of bronze as many small files: what a writer leaves between compactions."""
    uri = Lab05.fresh_table(lab.settings, lab.prefix, "layout")
    _write_bronze(lab, uri, LAYOUT_COMMITS)


BUILDERS = {
    "ex1": _build_ex1,
    "ex2": _build_ex2,
    "ex3": _build_serving,
    "ex4": _build_ex4,
    "ex5": _build_serving,
}


# --- a private ROAPI for the checks (and for trying a function before its check) --------


@contextmanager
def serving(lab: Lab05, entries: list[dict] | None = None) -> Iterator[Listeners]:
    """ROAPI on free loopback ports until the block ends; yields its addresses
    (``.http``, ``.postgres``, ``.flight_sql``).

    Without ``entries`` it serves the lab's summary (``lab.serving``) and bronze, both as
    providers. The stack's ROAPI is never touched, and no process outlives the block.
    """
    if entries is None:
        entries = [
            delta_entry(lab.serving, lab.serving_uri),
            delta_entry(lab.bronze, lab.bronze_uri),
        ]
    with (
        tempfile.TemporaryDirectory(prefix="lab05-roapi-") as folder,
        roapi(entries, lab.settings, Path(folder), timeout=60) as listeners,
    ):
        yield listeners


def _entries(tables: list[DeltalakeTable], lab: Lab05) -> list[dict]:
    """ROAPI's config entries for ``tables``, written by the catalog as ``serve()`` does."""
    module = types.ModuleType("lab05_declared")
    for table in tables:
        setattr(module, table.name, table)
    module.__dict__["__all__"] = [t.name for t in tables]
    export = export_catalog(
        Catalog({"lab05": ModuleDatabase(module)}), "lab05", lab.settings, inspect=False
    )
    return roapi_config(export)["tables"]


# --- exercise 1: a serving table ------------------------------------------------------

SUMMARY = Hint(
    concept="A dashboard that asks the same question thousands of times reads fastest from "
    "a table that already holds the answer, one row per thing it asks about. Before you "
    "write it, think about how ROAPI will hold it and what that needs of its files.",
    api="pl.scan_delta(...) with group_by/agg, then DataFrame.write_delta(uri, "
    "storage_options=...) (lesson 05, section 2 writes the tables it serves; lesson 05, "
    "section 2 also says which tables ROAPI can hold in memory).",
    call="pl.scan_delta(lab.bronze_uri, storage_options=opts).group_by('session_id', "
    "'channel').agg(samples=pl.len().cast(pl.Int64), spikes=pl.col('spike').sum()"
    ".cast(pl.Int64), mean_uv=pl.col('voltage_uv').mean().cast(pl.Float64)).collect()"
    ".write_delta(lab.summary_uri, mode='overwrite', storage_options=opts)",
)


def check_summary(lab: Lab05) -> None:
    """The summary table holds one row per session and channel, with the right numbers."""
    grade = Lab05.grading("ex1")
    opts = lab.storage_options
    table = lab.require_table(
        "ex1",
        lab.summary_uri,
        SUMMARY,
        what=f"summary table at {lab.summary_uri}",
        made_by="exercise 1's job writes it",
    )
    parts = table.metadata().partition_columns
    grade.expect(not parts, f"the summary table is partitioned by {parts}", SUMMARY)
    got = pl.read_delta(lab.summary_uri, storage_options=opts)
    want = truth(lab)
    missing = [c for c in want.columns if c not in got.columns]
    grade.expect(not missing, f"the summary table has no column {missing}", SUMMARY)
    got = got.select(want.columns).sort("session_id", "channel")
    grade.expect(
        got.height == want.height,
        f"the summary table has {got.height} rows; bronze has {want.height} (session, "
        "channel) pairs",
        SUMMARY,
    )
    same = got.cast(want.schema).drop("mean_uv").equals(want.drop("mean_uv"))
    close = np.allclose(got["mean_uv"].to_numpy(), want["mean_uv"].to_numpy(), rtol=1e-6)
    grade.expect(same and close, "the summary's numbers differ from the bronze table's", SUMMARY)
    passed(f"{got.height} (session, channel) rows, unpartitioned")


# --- exercise 2: a serving mode for each table ----------------------------------------

#: Exercise 2's tables: what the lab's text says about each, and the mode that fits.
MODES = {
    "bronze": ("a commit every second, partitioned by date", False),
    "serving": ("rewritten every 10 minutes, read thousands of times a minute", True),
    "devices": ("10 rows, changed monthly, joined into most dashboard queries", True),
    "alerts": ("a commit every second, for good, read a few times an hour", False),
}

MODE = Hint(
    concept="A provider pays at every query (it reads the current files); a memory table "
    "pays at every reload (it re-reads the whole table) and in RAM. Weigh, per table, how "
    "often it is read against how often it changes, and check what each mode can load.",
    api="DeltalakeTable(name, partition_columns=[...], roapi_memory_table=...) "
    "(lesson 05, section 2, with what each mode costs and which tables memory mode "
    "cannot load).",
    call="declared = [DeltalakeTable(lab.bronze, partition_columns=['date']), "
    "DeltalakeTable(lab.serving, roapi_memory_table=True), DeltalakeTable(lab.devices, "
    "roapi_memory_table=True), DeltalakeTable(lab.alerts)]",
)


def check_modes(lab: Lab05, declared: Any) -> None:
    """One declaration per table, in the mode that fits it; then served by a ROAPI the
    grader starts from the catalog's config, each table counted through it."""
    grade = Lab05.grading("ex2")
    grade.expect(declared is not None, "declared is None", MODE)
    tables = list(declared)
    wrong_type = [type(t).__name__ for t in tables if not isinstance(t, DeltalakeTable)]
    grade.expect(not wrong_type, f"declared holds {wrong_type}, not DeltalakeTables", MODE)
    by_name = {t.name: t for t in tables}
    want = {lab.name(short) for short in MODES}
    grade.expect(
        set(by_name) == want and len(tables) == len(want),
        f"declared names {sorted(by_name)}; the tables are {sorted(want)}",
        MODE,
    )
    for short, (story, memory) in MODES.items():
        table, name = by_name[lab.name(short)], lab.name(short)
        parts = DeltaTable(lab.uri(short), storage_options=lab.storage_options)
        partitioned = parts.metadata().partition_columns
        grade.expect(
            list(table.partition_columns) == partitioned,
            f"{name} is declared with partition columns {list(table.partition_columns)}; "
            f"its log says {partitioned}",
            MODE,
        )
        mode = "in memory" if table.roapi_memory_table else "as a provider"
        grade.expect(
            table.roapi_memory_table == memory, f"{name} ({story}) is declared {mode}", MODE
        )
    try:
        entries = _entries(tables, lab)
    except CatalogError as error:  # pragma: no cover - the checks above catch it first
        grade.expect(False, f"the catalog refuses the declarations: {error}", MODE)
    counted = {}
    with serving(lab, entries) as api, RoapiClient(http=api.http) as client:
        for name in want:
            column = "device_id" if name == lab.devices else "session_id"
            counted[name] = client.sql(f"SELECT count({column}) AS n FROM {name}")["n"][0]
    for name, n in counted.items():
        rows = pl.scan_delta(lab.settings.table_uri(name), storage_options=lab.storage_options)
        grade.expect(
            n == rows.select(pl.len()).collect().item(),
            f"ROAPI counts {n} rows in {name}, not the table's",
            MODE,
        )
    modes = {
        e["name"]: "memory" if e["option"]["use_memory_table"] else "provider" for e in entries
    }
    passed(
        "ROAPI served " + ", ".join(f"{n} ({modes[n]}, {counted[n]:,} rows)" for n in sorted(want))
    )


# --- exercise 3: a question over the PostgreSQL wire ----------------------------------

RATE = Hint(
    concept="Work out one channel's rate by hand from the summary's spikes and samples, "
    "and compare it with what your query returns for that channel. And psql prints text, "
    "not numbers.",
    api="psql with a connection string (host, port, user=roapi, dbname=roapi, "
    "sslmode=disable) and -At -F, for bare comma-separated rows, run with subprocess.run "
    "(lesson 05, section 3); CAST(x AS DOUBLE) in DataFusion's SQL.",
    call="host, port = postgres.rsplit(':', 1); sql = f'SELECT channel, CAST(spikes AS "
    "DOUBLE) / samples AS rate FROM {lab.serving} WHERE session_id = {session_id} ORDER BY "
    "rate DESC, channel LIMIT {n}'; out = subprocess.run(['psql', f'host={host} port={port} "
    "user=roapi dbname=roapi sslmode=disable', '--no-psqlrc', '-At', '-F,', '-c', sql], "
    "capture_output=True, text=True, check=True).stdout; return [(int(c), float(r)) for c, "
    "r in (line.split(',') for line in out.splitlines())]",
)


def top_rates(lab: Lab05, session_id: int, n: int) -> list[tuple[int, float]]:
    """The ``n`` channels of a session with the highest spike rate, ties by channel."""
    frame = (
        truth(lab)
        .filter(pl.col("session_id") == session_id)
        .with_columns(rate=pl.col("spikes") / pl.col("samples"))
        .sort(["rate", "channel"], descending=[True, False])
        .head(n)
    )
    return [(int(c), float(r)) for c, r in frame.select("channel", "rate").iter_rows()]


def check_rates(lab: Lab05, top_spike_rate: Any) -> None:
    """The grader serves the summary, calls the student's psql function for two sessions,
    and compares channels and rates with the truth."""
    grade = Lab05.grading("ex3")
    grade.expect(callable(top_spike_rate), "top_spike_rate is None", RATE)
    other = int(np.random.default_rng().integers(1, SESSIONS + 1))
    with serving(lab) as api:
        answers = {s: top_spike_rate(api.postgres, s, 5) for s in (lab.session, other)}
    for session, got in answers.items():
        want = top_rates(lab, session, 5)
        try:
            rows = [(int(c), float(r)) for c, r in got]
        except (TypeError, ValueError):
            rows = None
        if rows is None:
            grade.fail(
                f"top_spike_rate({session}) returned {got!r:.80}, not (channel, rate) pairs",
                RATE,
            )
        grade.expect(
            len(rows) == len(want),
            f"top_spike_rate({session}) returned {len(rows)} rows, not 5",
            RATE,
        )
        zero = all(r == 0 for _, r in rows) and any(r > 0 for _, r in want)
        grade.expect(
            not zero,
            f"every rate top_spike_rate({session}) returned is 0; session {session}'s highest "
            f"is {want[0][1]:.4f}",
            RATE,
        )
        same = [c for c, _ in rows] == [c for c, _ in want] and all(
            abs(r - w) < 1e-9 for (_, r), (_, w) in zip(rows, want, strict=True)
        )
        grade.expect(
            same, f"top_spike_rate({session}) returned {rows}; the summary's top 5 are {want}", RATE
        )
    passed(f"the top 5 spike rates of sessions {lab.session} and {other}, through psql")


# --- exercise 4: a layout the session query can prune ---------------------------------

LAYOUT = Hint(
    concept="A provider skips a file only when the file's min/max statistics exclude the "
    "value asked for. Fewer files alone do not help if every file still covers every "
    "session: think about how rows are spread over files.",
    api="DeltaTable(uri).optimize.z_order([...], target_size=...) (lesson 01, section 7); "
    "explain.plan and explain.scan_metrics show files_scanned (lesson 05, section 6).",
    call="table_bytes = delta.inspect(lab.layout_uri, opts)['bytes'][0]; DeltaTable("
    "lab.layout_uri, storage_options=opts).optimize.z_order(['session_id'], "
    "target_size=table_bytes // 16)",
)


def check_layout(lab: Lab05) -> None:
    """The rows it started with; the session query, run by a ROAPI the grader starts, opens at
    most a third of the table's files (EXPLAIN ANALYZE's files_scanned)."""
    grade = Lab05.grading("ex4")
    opts = lab.storage_options
    got = pl.read_delta(lab.layout_uri, storage_options=opts)
    # the rows setup wrote: the version of its last commit, still in the log
    built = pl.read_delta(lab.layout_uri, version=LAYOUT_COMMITS - 1, storage_options=opts)
    order = built.columns
    grade.expect(
        got.select(order).sort(order).equals(built.sort(order)),
        f"the layout table holds {got.height:,} rows that differ from the {built.height:,} "
        "it started with",
        LAYOUT,
    )
    files = len(DeltaTable(lab.layout_uri, storage_options=opts).file_uris())
    name = lab.name("layout")
    sql = (
        "SELECT channel, count(voltage_uv) AS samples FROM {t} "
        "WHERE session_id = {s} GROUP BY channel"
    )
    opened = {}
    with serving(lab, [delta_entry(name, lab.layout_uri)]) as api, RoapiClient(http=api.http) as c:
        for session in (1, 25, 50, 75, 100):
            plan = explain.plan(c, sql.format(t=name, s=session))
            opened[session] = int(explain.scan_metrics(plan)["files_scanned"])
    worst = max(opened.values())
    grade.expect(
        worst <= MAX_OPENED_SHARE * files,
        f"a session's query opened up to {worst} of the table's {files} files "
        f"(sessions -> files opened: {opened})",
        LAYOUT,
    )
    passed(f"a session's query opens at most {worst} of {files} files: {opened}")


# --- exercise 5: a client function within a latency budget ---------------------------

BUDGET = Hint(
    concept="The same answer can come from different tables held in different ways, and "
    "each way has a fixed cost per query. The budget holds the typical call and the slow "
    "ones (p50 and p95): which costs can a query avoid altogether?",
    api="DeltalakeTable(..., roapi_memory_table=...) (lesson 05, section 2); "
    "client.sql(query) returns a Polars DataFrame; the latency table of lesson 05, "
    "section 5 compares the modes.",
    call="fast_table = DeltalakeTable(lab.serving, roapi_memory_table=True); def "
    "channel_spikes(client, session_id): return client.sql(f'SELECT channel, spikes FROM "
    "{lab.serving} WHERE session_id = {session_id} ORDER BY channel')",
)


def check_budget(lab: Lab05, fast_table: Any, channel_spikes: Any) -> None:
    """Serve ``fast_table`` as declared, check ``channel_spikes``'s answer and types, then
    time CALLS calls over every session and hold p50 and p95 to the budget."""
    grade = Lab05.grading("ex5")
    grade.expect_a(fast_table, DeltalakeTable, "fast_table", BUDGET)
    grade.expect(callable(channel_spikes), "channel_spikes is None", BUDGET)
    try:
        entries = _entries([fast_table], lab)
    except CatalogError as error:
        grade.expect(False, f"the catalog cannot serve fast_table: {error}", BUDGET)
    session = int(np.random.default_rng().integers(1, SESSIONS + 1))
    want = truth(lab).filter(pl.col("session_id") == session).select("channel", "spikes")
    with serving(lab, entries) as api, RoapiClient(http=api.http) as client:
        got = channel_spikes(client, session)
        grade.expect(
            isinstance(got, pl.DataFrame) and got.columns == ["channel", "spikes"],
            "channel_spikes does not return a DataFrame of columns channel, spikes",
            BUDGET,
        )
        grade.expect(
            got.schema["channel"] in (pl.Int16, pl.Int32) and got.schema["spikes"].is_integer(),
            f"channel_spikes returns channel as {got.schema['channel']} and spikes as "
            f"{got.schema['spikes']}, not the table's integer types",
            BUDGET,
        )
        grade.expect(
            got.cast(want.schema).equals(want),
            f"channel_spikes({session}) differs from the bronze table's spikes per channel",
            BUDGET,
        )
        sessions = [1 + i % SESSIONS for i in range(CALLS)]
        samples = latency.measure(lambda s: channel_spikes(client, s), sessions)
    measured = latency.percentiles(samples)
    mode = "memory" if entries[0]["option"]["use_memory_table"] else "provider"
    load = f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    grade.expect(
        measured["p50_ms"] < BUDGET_P50_MS and measured["p95_ms"] < BUDGET_P95_MS,
        f"{CALLS} calls on {fast_table.name} ({mode}): p50 {measured['p50_ms']} ms, p95 "
        f"{measured['p95_ms']} ms; the budget is p50 under {BUDGET_P50_MS:.0f} ms and p95 "
        f"under {BUDGET_P95_MS:.0f} ms ({load})",
        BUDGET,
    )
    passed(
        f"{CALLS} calls on {fast_table.name} ({mode}): p50 {measured['p50_ms']} ms, p95 "
        f"{measured['p95_ms']} ms, p99 {measured['p99_ms']} ms, within the budget (p50 < "
        f"{BUDGET_P50_MS:.0f} ms, p95 < {BUDGET_P95_MS:.0f} ms; {load})"
    )
