# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · Code as a catalog
#
# **Learning objectives.** After this lesson you can:
#
# 1. read a Delta table lazily with `pl.scan_delta` and **prove** filter pushdown from
#    its `explain()` plan and from the files the scan opens;
# 2. declare a table in Python (`DeltalakeTable`, `Column`, `@table`), read it with
#    `.scan(filters=...)` (an older version with `version=`), and gather tables into a
#    `Catalog` of `ModuleDatabase`s;
# 3. guard a table with declared quality checks, and read a failing check's report;
# 4. publish the same declarations as a website and a ROAPI config, query ROAPI over
#    HTTP, and keep the column types on the way back (JSON loses them, Arrow keeps them).
#
# **Time:** about 45 minutes to read and run (the notebook itself runs in well under a
# minute at its default parameters).
# **Prerequisites:** lesson 01 (Delta tables, the transaction log, partitions, the
# request log); the stack running (`make up`). Without it, sections 1 to 5 run on a local
# warehouse without PostgreSQL; section 6 counts S3 requests and stops there with one
# line that says to start the stack.
#
# **Why.** A lakehouse soon holds hundreds of tables. Where is the session table? What
# does `quality` mean? Who owns it? Is it fresh? Which tables break if it changes?
# Neuralink's answer (their open-source `datarepo`) is to keep the catalog **in code**:
# a Python module is a database, each table is a declaration in it, and a website,
# copy-paste snippets and an HTTP/SQL API are *generated* from it. A new table is a pull
# request, reviewed like any code.
#
# The plan: first the real API underneath (Polars over Delta), then the declarations
# that wrap it, then what the declarations give you for free (checks, site, ROAPI).
# The library here follows datarepo and goes past it where datarepo is weak: reads stay
# lazy (so a later `.filter()` still skips files), filters never become SQL text, and
# the ROAPI config is really written and tested.

# %% tags=["parameters"]
ROWS = 1_000_000  # neural-signal rows to generate (rounded up to whole 102.4 ms blocks)
SESSIONS = 4  # recording sessions; neural_signals is partitioned by session
REPEATS = 3  # timed runs per query, after one warm-up (the median is reported)

# %%
import inspect
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from html import escape
from pathlib import Path

import httpx
import matplotlib.pyplot as plt
import polars as pl
import yaml
from deltalake import DeltaTable
from IPython.display import HTML, display

import neuralake
from neuralake.catalog import (
    Catalog,
    CatalogError,
    Column,
    DeltalakeTable,
    Filter,
    ModuleDatabase,
    NotNull,
    Range,
)
from neuralake.catalog.examples import neuro
from neuralake.catalog.examples.seed import seed
from neuralake.catalog.export import export_catalog
from neuralake.catalog.pushdown import measure
from neuralake.catalog.quality import run_checks
from neuralake.catalog.roapi import roapi_config, skipped
from neuralake.catalog.site import build_site
from neuralake.lab.api.server import roapi
from neuralake.lab.stack.processes import free_port
from neuralake.settings import project_dir
from neuralake.timing import warm_ms

s = neuralake.settings()
options = s.storage_options or None  # S3 credentials on the stack; None for local files
print(f"profile {s.profile}: warehouse {s.warehouse_uri}, PostgreSQL {bool(s.postgres_dsn)}")

# %% [markdown]
# ## 1 · Create the data
#
# The example catalog `neuralake/catalog/examples/neuro.py` describes a small study:
# neural signals, sessions, devices, cursor events, patients. `seed` writes its data
# under `catalog/` in the warehouse (Delta tables, `neural_signals` partitioned by
# session) and loads the patients into PostgreSQL (the "clinical registry") when the
# stack is up.

# %%
started = time.perf_counter()
seeded = seed(s, rows=ROWS, sessions=SESSIONS)
signals_uri = seeded.uris["neural_signals"]
print(
    f"wrote {seeded.signal_rows:,} signal rows and {len(seeded.uris)} tables "
    f"in {time.perf_counter() - started:.1f} s; patients in PostgreSQL: "
    f"{seeded.patients_in_postgres}"
)

# %% [markdown]
# ## 2 · Underneath: a lazy scan and its plan
#
# Everything the catalog reads goes through one Polars call,
# [`pl.scan_delta`](https://docs.pola.rs/api/python/stable/reference/api/polars.scan_delta.html).
# It reads only the Delta log and returns a **LazyFrame**: a query plan, no data. A
# `.filter()` added to it becomes part of the plan, and
# [`explain()`](https://docs.pola.rs/api/python/stable/reference/lazyframe/api/polars.LazyFrame.explain.html)
# prints the plan after the optimizer ran. The `Parquet SCAN [...]` line lists the
# files the scan will open: that list is the proof that the filter was pushed down.


# %%
def short_plan(frame: pl.LazyFrame) -> str:
    """The optimized plan, with the table's folder cut from the file names."""
    return frame.explain().replace(signals_uri.rstrip("/") + "/", "")


everything = pl.scan_delta(signals_uri, storage_options=options)
session_two = everything.filter((pl.col("session_id") == 2) & (pl.col("channel") < 8))
print(type(session_two).__name__, "- nothing read yet\n")
print("no filter:\n" + short_plan(everything) + "\n")
print("filter on session_id and channel:\n" + short_plan(session_two))

# %% [markdown]
# Without a filter the scan lists all files; with one it lists only the two files in
# the `session_id=2/` folder. Polars got there from the Delta log, before reading any
# data: the log stores each file's partition values and per-column min/max statistics.
# Here they are for `neural_signals` (`get_add_actions` from deltalake), with the files
# the filtered plan keeps marked:

# %%
files = pl.DataFrame(DeltaTable(signals_uri, storage_options=options).get_add_actions(flatten=True))
scanned = set(re.findall(r"part-[\w.-]+?\.parquet", short_plan(session_two)))
log_view = files.select(
    pl.col("partition.session_id").alias("session_id"),
    pl.col("num_records").alias("rows"),
    (pl.col("size_bytes") / 1e6).round(2).alias("MB"),
    pl.col("min.timestamp").dt.strftime("%b %d %H:%M:%S%.3f").alias("min timestamp"),
    pl.col("max.timestamp").dt.strftime("%b %d %H:%M:%S%.3f").alias("max timestamp"),
    pl.col("path").str.extract(r"(part-[\w.-]+?\.parquet)").is_in(scanned).alias("scanned"),
).sort("session_id")
scanned_mb = log_view.filter("scanned")["MB"].sum()
print(
    f"the filtered plan scans {log_view['scanned'].sum()} of {log_view.height} files, "
    f"{scanned_mb:.1f} of {log_view['MB'].sum():.1f} MB"
)
log_view

# %% [markdown]
# ## 3 · Declare a table: `Column`, `DeltalakeTable`, `.scan(filters=...)`
#
# A catalog table is that scan plus what people need to know about it. `DeltalakeTable`
# takes the location, a description, the schema with a description per column
# (`Column(type, description)`), the partitioning, an example filter for the docs
# (`docs_filters`), tags, owner, lineage (`upstream`) and quality checks. This notebook
# is a Python module like any other, so a table declared here is as real as one in a
# package. `uri` may be relative: it is then a path inside the warehouse of whatever
# profile reads it (`local`, `stack` or `aws`).

# %%
signals = DeltalakeTable(
    "neural_signals",
    uri="catalog/neural_signals",
    description="Raw voltage from every electrode channel, one row per channel per 100 µs "
    "sample. Partitioned by session.",
    schema={
        "timestamp": Column(pl.Datetime("us", "UTC"), "When the sample was taken (UTC)."),
        "session_id": Column(pl.Int32, "The recording session (see sessions)."),
        "device_id": Column(pl.Int32, "The implant that recorded it."),
        "patient_id": Column(pl.Int32, "The participant."),
        "channel": Column(pl.Int16, "Electrode channel, 0-based."),
        "voltage_uv": Column(pl.Float32, "Filtered voltage in microvolts."),
        "spike": Column(pl.Boolean, "True at the trough of a detected spike."),
        "quality": Column(pl.Float32, "Signal quality, 0 (unusable) to 1 (clean)."),
    },
    partition_columns=["session_id"],
    docs_filters=[Filter("session_id", "=", 1), Filter("spike", "=", True)],
    tags=["raw", "signals"],
    owner="neural-data@neuralake.dev",
    checks=[NotNull("voltage_uv"), Range("quality", min=0, max=1)],
)
declared = pl.Schema({c.name: c.dtype for c in signals.declared_columns()})
print("declared schema matches the Delta log:", declared == everything.collect_schema())

# %% [markdown]
# `.scan(filters=...)` is the catalog's read. It returns the same kind of LazyFrame:
# `pl.scan_delta(location)`, then one `.filter()` built from the `Filter` list, then
# the columns you asked for. The plan opens the same two files as the hand-written one:

# %%
by_catalog = signals.scan(filters=[Filter("session_id", "=", 2), Filter("channel", "<", 8)])
print(short_plan(by_catalog))


def scanned_files(frame: pl.LazyFrame) -> list[str]:
    return sorted(re.findall(r"part-[\w.-]+?\.parquet", short_plan(frame)))


print(
    "\nsame files as the hand-written scan:",
    scanned_files(by_catalog) == scanned_files(session_two),
)

# %% [markdown]
# `Filter(column, op, value)` lists: a list means AND, a list of lists means OR. The ops
# are `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `contains`. A column the table
# does not declare is an error that lists the columns it has, before anything is read.

# %%
either = [
    [Filter("session_id", "=", 1), Filter("channel", "<", 2)],
    [Filter("session_id", "=", 2), Filter("channel", "in", [7, 8])],
]
display(
    signals.scan(filters=either).group_by("session_id", "channel").len().sort(pl.all()).collect()
)
try:
    signals.scan(filters=[Filter("chanel", "<", 8)])
except CatalogError as error:
    print("error:", error)

# %% [markdown]
# ## 4 · A module is a database; databases make a catalog
#
# `ModuleDatabase(module)` collects the tables declared at the top level of a module;
# `Catalog({name: database})` names the databases. Here is one declaration from the
# example module, then the catalog of that module:

# %%
source = inspect.getsource(neuro)
start = source.index("sessions = DeltalakeTable(")
print(source[start : source.index("\n)\n", start) + 2])

# %%
catalog = Catalog({"neuro": ModuleDatabase(neuro)})
db = catalog.db("neuro")
pl.DataFrame(
    [
        {
            "table": t.name,
            "kind": getattr(t, "kind_label", t.kind),
            "owner": t.owner,
            "checks": len(t.checks),
            "upstream": ", ".join(t.upstream),
        }
        for t in db.tables().values()
    ]
)

# %% [markdown]
# `db.table(name, filters=..., columns=...)` is `db.get(name).scan(...)`: the same lazy
# read, found by name. A typo gets an error that lists what exists. The same works for
# the table declared in this notebook: `ModuleDatabase(sys.modules[__name__])` is the
# database of this notebook (lab 02 builds its catalog this way).

# %%
cursor_sessions = db.table(
    "sessions",
    filters=[Filter("task", "=", "cursor_control")],
    columns=["session_id", "patient_id", "task", "started_at"],
)
display(cursor_sessions.collect())
try:
    db.table("session")
except CatalogError as error:
    print("error:", error)

notebook_catalog = Catalog({"lesson": ModuleDatabase(sys.modules[__name__])})
print("tables declared in this notebook:", list(notebook_catalog.db("lesson").tables()))

# %% [markdown]
# ## 5 · One lazy query over three kinds of tables
#
# `sessions` is a Delta table, `session_quality` a **function table** (a Python
# function that returns a LazyFrame, declared with `@table`; its docstring is its
# description), `patients` a table in **PostgreSQL**. They join in one Polars plan.

# %%
print(db.get("session_quality").description)
if s.postgres_dsn:
    joined = (
        db.table("sessions", columns=["session_id", "patient_id", "task"])
        .join(db.table("session_quality"), on=["session_id", "task"])
        .join(db.table("patients", columns=["patient_id", "code", "cohort"]), on="patient_id")
        .sort("session_id")
        .with_columns(pl.col("spike_rate_hz", "mean_quality").round(3))
    )
    display(joined.collect())
else:
    print("no PostgreSQL in this profile: start the stack (neuralake stack up) for the join")

# %% [markdown]
# PostgreSQL filters are sent as **parameters**, never spliced into the SQL text. Here
# is the query the catalog sends for a hostile value; the value travels separately:

# %%
query, params = db.get("patients").query(
    [Filter("code", "=", "P0001' OR '1'='1")], ["patient_id", "code"], limit=None
)
print(query.as_string(None))
print("parameters:", params)
if s.postgres_dsn:
    hostile = db.table("patients", filters=[Filter("code", "=", "P0001' OR '1'='1")])
    print("rows matched by the hostile value:", hostile.collect().height)

# %% [markdown]
# ## 6 · Measure filter pushdown
#
# The plan said which files a scan will open; now count them. `measure(make_frame, s)`
# is lesson 01's `delta.RequestLog` packaged for a query: it calls `make_frame` with
# settings whose S3 endpoint is the request log, collects the query once, and counts the
# requests that crossed the wire: data files opened, their bytes, requests to the log. A
# file the reader skipped was never requested. The proxy slows each request down, so the
# time is measured separately, straight to S3 (`warm_ms`: one warm-up, then the median of
# `REPEATS` runs). Four reads of `neural_signals`: everything; a filter given to the
# catalog; the same filter written *after* the read with `.filter()`; and a filter on
# `timestamp`, which is not a partition column.


# %%
table_files = len(DeltaTable(signals_uri, storage_options=options).file_uris())


def cost(make_frame: Callable[[neuralake.Settings], pl.LazyFrame]) -> dict:
    """Rows, files and MB from one counted run; ms from direct runs."""
    _, reads = measure(make_frame, s)
    return {
        "rows": reads.rows,
        "files opened": reads.files_opened,
        "of": table_files,
        "MB read": round(reads.bytes_read / 1e6, 2),
        "ms": warm_ms(lambda: make_frame(s).collect(), REPEATS),
    }


first_end = (
    db.table("sessions", filters=[Filter("session_id", "=", 1)]).select("ended_at").collect().item()
)
cases = {
    "no filter": lambda st: signals.scan(settings=st),
    "filters=[session_id = 2]": lambda st: signals.scan(
        filters=[Filter("session_id", "=", 2)], settings=st
    ),
    "later .filter(session_id == 2)": lambda st: signals.scan(settings=st).filter(
        pl.col("session_id") == 2
    ),
    "timestamp < end of session 1": lambda st: signals.scan(settings=st).filter(
        pl.col("timestamp") < first_end
    ),
}
pushdown = pl.DataFrame([{"query": label, **cost(make)} for label, make in cases.items()])
pushdown

# %%
fig, ax = plt.subplots(figsize=(7, 2.6))
ax.barh(pushdown["query"], pushdown["ms"], color=["#999", "#2a7", "#2a7", "#2a7"])
for y, (ms, opened, total) in enumerate(pushdown.select("ms", "files opened", "of").rows()):
    ax.text(ms, y, f"  {opened}/{total} files", va="center")
ax.invert_yaxis()
ax.set_xlabel(f"ms, median of {REPEATS}")
ax.set_xlim(0, pushdown["ms"].max() * 1.35)
ax.set_title("Reading neural_signals: time and files opened")
fig.tight_layout()
plt.show()

# %% [markdown]
# The filter given to the catalog and the `.filter()` written afterwards open the same
# files: the read stayed lazy, so the optimizer moved the later filter into the scan.
# (Neuralink's datarepo reads Delta tables eagerly, so there a later filter runs on
# rows already downloaded.) The timestamp filter is on a column that is *not* a
# partition: the per-file min/max statistics in the log (the table in section 2) let
# the reader skip files anyway. The megabytes follow the files: a skipped file costs
# nothing, an opened one costs its columns (the table in section 2 lists the sizes).

# %%
full, filtered, later, by_time = pushdown.iter_rows(named=True)
assert later["files opened"] == filtered["files opened"] < full["files opened"] == table_files
assert by_time["files opened"] < table_files, "min/max statistics skip files"
print(
    f"a session filter opens {filtered['files opened']} of {full['of']} files "
    f"({filtered['MB read']} of {full['MB read']} MB) and takes {filtered['ms']} ms "
    f"instead of {full['ms']} ms"
)

# %% [markdown]
# ## 7 · A materialized view, and time travel
#
# `channel_stats` is a function table declared with `@table(materialize=True,
# uri=...)`: `catalog.refresh("channel_stats")` runs the function once and overwrites
# a Delta table at `uri`; reads then come from that table, and ROAPI can serve it.

# %%
start = source.index("@table(\n    materialize=True")
print(source[start : source.index('    """', start)] + '    """..."""\n    return ...')

# %%
version = catalog.refresh("channel_stats")
print(f"channel_stats refreshed: Delta version {version.version}")
computed = cost(lambda st: neuro.channel_stats.compute())  # catalog reads use st here
stored = cost(lambda st: db.table("channel_stats", settings=st))
pl.DataFrame(
    [
        {"read": "compute from neural_signals", **computed},
        {"read": "the materialized view", **stored},
    ]
).select("read", "rows", "files opened", "MB read", "ms")

# %% [markdown]
# Every refresh is a new version of the view's Delta table, and the catalog reads old
# versions the way lesson 01 did with `pl.read_delta(..., version=)`:
# `db.table(name, version=v)` (or `timestamp=...`), and `history()` lists the versions.
# Refresh once more, as a job would after new sessions land, and read both:

# %%
latest = catalog.refresh("channel_stats")
view = db.get("channel_stats")
display(
    pl.DataFrame(
        [{"version": v.version, "committed at": v.committed_at} for v in view.history()[:3]]
    )
)
for v in (version.version, latest.version):
    refreshed = db.table("channel_stats", version=v, columns=["refreshed_at"]).head(1)
    print(f"version {v}: refreshed_at {refreshed.collect().item():%H:%M:%S.%f}")

# %% [markdown]
# ## 8 · Quality checks, passing and failing
#
# Checks are declared on each table: `NotNull(column)`, `Unique(column)` (or
# `Unique("session_id", also=["channel"])` for a key of several columns),
# `Range(column, min=, max=)`, `AcceptedValues(column, [...])`, `Freshness(column,
# days=)`. Each is one aggregate (a count of failing rows), so the catalog runs all
# checks of a table in **one** lazy pass. `catalog.check()` runs every table's.

# %%
reports = catalog.check()
pl.DataFrame(
    [
        {
            "table": r.table,
            "checks passed": f"{sum(c.passed for c in r.results)}/{len(r.results)}",
            "rows": r.rows,
            "ms": round(r.seconds * 1000),
        }
        for r in reports
    ]
)

# %% [markdown]
# A check that passes teaches little; here is what a failing one looks like.
# `run_checks(name, frame, checks)` runs checks on any LazyFrame. First a check that is
# stricter than the data (signal quality drops during artifacts), then the declared
# checks of `signals` on three broken rows.

# %%
strict = run_checks("neural_signals", signals.scan(), [Range("quality", min=0.5)])
broken = (
    signals.scan(filters=[Filter("session_id", "=", 1)])
    .head(3)
    .with_columns(voltage_uv=pl.lit(None, pl.Float32), quality=pl.Series([0.9, 1.5, -0.1]))
)
on_broken = run_checks("broken rows", broken, signals.checks)
pl.DataFrame(
    [
        {"frame": r.table, "check": c.check, "passed": c.passed, "detail": c.detail}
        for r in (strict, on_broken)
        for c in r.results
    ]
)

# %% [markdown]
# ## 9 · The generated website
#
# `neuralake catalog site` (here: `build_site`) renders static HTML from the export,
# with Jinja2: an index with search and tag filters, and a page per table with its
# schema, quality status, freshness (Delta version and commit time), lineage drawn as
# SVG, and snippets. It loads nothing from the internet. Below: the `sessions` page.

# %%
out = project_dir() / "build" / "catalog_site"
started = time.perf_counter()
export = export_catalog(catalog, "neuralake.catalog.examples.neuro", s, quality=reports)
index = build_site(export, out)
built_s = time.perf_counter() - started
print(f"built {len(export['tables'])} pages in {built_s:.2f} s: {index.relative_to(project_dir())}")
page = (out / "tables" / "neuro.sessions.html").read_text()
HTML(
    f'<div><iframe srcdoc="{escape(page)}" style="width:100%;height:720px;border:1px solid #ccc">'
    "</iframe></div>"
)

# %% [markdown]
# ## 10 · The same catalog as an API: ROAPI
#
# [ROAPI](https://roapi.github.io/docs/) serves tables over HTTP (SQL, REST, GraphQL),
# the PostgreSQL wire protocol and Flight SQL, from a YAML config. The config is
# written from the same export: every Delta table and the materialized view; function
# and PostgreSQL tables are skipped, with the reason.

# %%
config = roapi_config(export)
print("\n".join(f"skipped {name}: {reason}" for name, reason in skipped(export)))
print(yaml.safe_dump({"addr": config["addr"], "tables": config["tables"][:1]}, sort_keys=False))
with pl.Config(fmt_str_lengths=60):
    display(
        pl.DataFrame(
            [
                {"name": t["name"], "format": t["option"]["format"], "uri": t["uri"]}
                for t in config["tables"]
            ]
        )
    )

# %% [markdown]
# ROAPI is one binary, `roapi -c <config>`; it reads the S3 endpoint and keys from its
# environment (`s.roapi_env`). Run it for real on a config that points at a table that
# does not exist, to see how it fails: it exits, and says why in its own words.

# %%
ROAPI = Path(sys.executable).parent / "roapi"  # installed by the roapi wheel
broken_config = out / "roapi-broken.yaml"
missing = s.table_uri("catalog/no_such_table").removeprefix("file://")
free = {name: f"127.0.0.1:{free_port()}" for name in ("http", "postgres", "flight_sql")}
missing_table = {"name": "missing", "uri": missing, "option": {"format": "delta"}}
broken_config.write_text(yaml.safe_dump({"addr": free, "tables": [missing_table]}))
print(f"$ roapi -c {broken_config.name}")
ran = subprocess.run(
    [str(ROAPI), "-c", str(broken_config)],
    env={**os.environ, **s.roapi_env, "NO_COLOR": "1"},  # S3 endpoint and keys
    capture_output=True,
    text=True,
    timeout=60,
)
said = [line for line in (ran.stdout + ran.stderr).splitlines() if "error" in line.lower()]
print(f"roapi exited with code {ran.returncode}: {said[-1] if said else '(no error printed)'}")

# %% [markdown]
# A server that works must be started, waited for until it answers, and stopped
# however the cell ends. `neuralake.lab.api.server.roapi(tables, settings, folder)` does
# exactly that around the same command: it writes a config for `tables` on ports the
# kernel just picked (so it never collides with the ROAPI the stack runs), starts
# `roapi -c`, waits until `/api/schema` answers, yields the addresses, and stops the
# process when the `with` block ends. (`neuralake api serve`, lesson 05, restarts the
# stack's own ROAPI on a catalog instead.)
#
# Now the catalog's tables. Send ROAPI the SQL snippet from the `sessions` page, once
# with the default JSON answer and once asking for Arrow
# (`Accept: application/vnd.apache.arrow.stream`, see ROAPI's
# [response formats](https://roapi.github.io/docs/api/response.html)), and compare the
# column types with the Delta table's.

# %%
ARROW = {"Accept": "application/vnd.apache.arrow.stream"}
with roapi(config["tables"], s, out / "roapi") as listeners:
    api = f"http://{listeners.http}/api/sql"
    sql = next(t for t in export["tables"] if t["name"] == "sessions")["snippets"]["sql"]
    print(sql)
    as_json = httpx.post(api, content=sql, timeout=30)
    as_json.raise_for_status()
    from_json = pl.DataFrame(as_json.json())
    as_arrow = httpx.post(api, content=sql, headers=ARROW, timeout=30)
    as_arrow.raise_for_status()
    from_arrow = pl.read_ipc_stream(as_arrow.content)
    view_sql = (
        "SELECT session_id, sum(spikes) AS spikes FROM channel_stats "
        "GROUP BY session_id ORDER BY session_id"
    )
    view = httpx.post(api, content=view_sql, headers=ARROW, timeout=30)
    view.raise_for_status()
    from_view = pl.read_ipc_stream(view.content)
display(from_arrow.select("session_id", "task", "started_at", "channels"))


def type_name(dtype: pl.DataType) -> str:
    return "Datetime(us, UTC)" if dtype == pl.Datetime("us", "UTC") else str(dtype)


delta_schema = db.table("sessions").collect_schema()
pl.DataFrame(
    [
        {
            "column": name,
            "Delta table": type_name(dtype),
            "ROAPI JSON": type_name(from_json.schema[name]),
            "ROAPI Arrow": type_name(from_arrow.schema[name]),
        }
        for name, dtype in delta_schema.items()
    ]
)

# %% [markdown]
# JSON has one kind of number and no timestamps. Read back from JSON, every integer
# column comes back as `Int64` (the table has `Int32` and `Int16` ones) and every
# timestamp as an ISO-8601 **string**; code that compares or joins on them breaks
# quietly. Arrow carries the schema with the data, so the types come back exactly as
# the Delta table has them. Ask ROAPI for Arrow when a program reads the answer; JSON
# is for people and `curl`.
#
# The materialized view is served like any Delta table:

# %%
from_view

# %% [markdown]
# ## Exercise
#
# **Lab 02** (`labs/02_catalog/`) checks your work on the real table. You get an
# undocumented Delta table and five exercises:
#
# 1. declare it: `DeltalakeTable` with described `Column`s, partitioning and `docs_filters`;
# 2. read one session's channels with `.scan(filters=...)` so that files are skipped;
# 3. write quality checks that catch the broken rows the grader makes;
# 4. attach the checks and publish it: `Catalog` + `ModuleDatabase`, export, site and
#    ROAPI config;
# 5. stretch: a `@table(materialize=True)` view of it, refreshed and queried through
#    ROAPI with its types intact.
#
# ## Key takeaways
#
# - A catalog read is `pl.scan_delta(uri).filter(...)`: lazy, so filters written
#   anywhere reach the scan. `explain()` lists the files it will open; that is the proof.
# - Partition values and per-file min/max statistics live in the Delta log; they let
#   the reader skip files without reading them.
# - Declaring a table (`DeltalakeTable`, `Column`, `docs_filters`, `checks`) is what turns
#   data into something others can find, trust and query; the site, the checks and the
#   ROAPI config are generated from the same declaration.
# - Quality checks are aggregates that count failing rows; a failing report names the
#   check and how many rows broke it.
# - Over HTTP, JSON loses column types (Int32 -> Int64, timestamps -> strings); Arrow
#   keeps them.
#
# ## Self-check
#
# 1. `signals.scan().collect().filter(pl.col("session_id") == 2)`: how many files does
#    this open, and why is it different from `signals.scan().filter(...).collect()`?
# 2. A filter on `timestamp` skipped files although the table is partitioned by
#    session. Where did the reader find the information to skip them?
# 3. A dashboard reads `sessions` from ROAPI as JSON and joins it with a Polars frame on
#    `session_id`. Why does the join fail, and what are two ways to fix it?
#
# <details><summary>Answers</summary>
#
# 1. All of them: `.collect()` reads the whole table first, and the filter then runs on
#    rows already in memory. Keep the frame lazy until the end so the optimizer can push
#    the filter into the scan.
# 2. In the Delta log: every `add` action records the file's min and max per column;
#    files whose range cannot match the predicate are skipped (section 2's table).
# 3. JSON brings `session_id` back as Int64 while the frame has Int32 (and timestamps as
#    strings): cast after reading (`pl.col("session_id").cast(pl.Int32)`), or better,
#    ask ROAPI for Arrow (`Accept: application/vnd.apache.arrow.stream`) so the types
#    come back as declared.
#
# </details>
#
# ## End of Day 1: predict the number, then run it
#
# `neural_signals` is partitioned by session, and the Delta log keeps each file's
# min/max per column. A dashboard wants channels 0 to 7 of every session:
# `signals.scan(filters=[Filter("channel", "<", 8)])`. How many of the table's files
# will that read open? Write your guess in the next cell, then run the cell after it: it
# counts the files with `measure`, as section 6 did.

# %%
my_guess_files = None  # your guess: files opened by the channel < 8 read, e.g. 3

# %%
_, reads = measure(lambda st: signals.scan(filters=[Filter("channel", "<", 8)], settings=st), s)
actual = reads.files_opened
print(f"files opened by channel < 8: {actual} of {table_files}")
if my_guess_files is None:
    print("no guess yet: set my_guess_files above, then run both cells again")
else:
    verdict = "right" if my_guess_files == actual else "off: see why below"
    print(f"your guess {my_guess_files}, measured {actual}: {verdict}")

# %% [markdown]
# <details><summary>Why this number</summary>
#
# Every file: channel is not a partition column, and each file holds all 256 channels
# of its session, so every file's min/max for `channel` spans 0 to 255 and none can be
# ruled out. Only a sort or a partitioning by channel (lesson 01's Z-order) would let
# the reader skip files for this filter.
#
# </details>

# %%
assert (files["min.channel"] == 0).all() and (files["max.channel"] == 255).all()
assert actual == table_files, "a channel filter cannot skip a file that holds every channel"

# %% [markdown]
# ## Sources
#
# - Neuralink's datarepo, the design this follows: https://github.com/neuralinkcorp/datarepo
# - Polars `scan_delta`:
#   https://docs.pola.rs/api/python/stable/reference/api/polars.scan_delta.html and
#   `LazyFrame.explain`:
#   https://docs.pola.rs/api/python/stable/reference/lazyframe/api/polars.LazyFrame.explain.html
# - Delta log `add` actions and their statistics:
#   https://github.com/delta-io/delta/blob/master/PROTOCOL.md#add-file-and-remove-file
# - delta-rs `DeltaTable.get_add_actions`: https://delta-io.github.io/delta-rs/api/delta_table/
# - ROAPI config and Delta tables: https://roapi.github.io/docs/config/config-file.html,
#   https://roapi.github.io/docs/config/dataset-formats/delta.html; response formats:
#   https://roapi.github.io/docs/api/response.html
# - psycopg's `sql` module (identifiers and parameters):
#   https://www.psycopg.org/psycopg3/docs/api/sql.html
